"""The search index: every completed job's text segments and object tracks, across jobs.

Written when a job completes (in the job store's completion transaction) and gone with
the job; queried by `GET /v1/search`. `matching.py` holds the matching rule, written once
(folding, allowed errors, the distance, the score, the pieces a match must contain);
`values.py` the values that cross the store (entries, a query, a hit, a page position);
`memory_index.py` the in-memory index of the in-memory job store; `sql_index.py` the
index in the job database (DuckDB: a trigram table of its own; PostgreSQL: pg_trgm);
`backfill.py` indexes the jobs completed before the index existed. Plain Python except
`sql_index.py`: nothing here imports the job store, which imports this.
"""
