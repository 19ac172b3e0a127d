"""Tests of the database layer on DuckDB and PostgreSQL."""
