"""The Python client against a real `forgesyte serve`: a job from submit to delete, pages of
results and jobs, a retried submit, and docs/client.md's script, run as written."""

from __future__ import annotations

import itertools
import re
import runpy
import sys
from pathlib import Path

import pytest

from forgesyte.client import ApiError, Client, Job, ResultsPage
from tests.support.server import TEST_POLL, ServerProcess

REPO = Path(__file__).resolve().parents[2]


def _counting_pages(job: Job, offsets: list[int]) -> None:
    """Record the offset of every results page the job fetches."""
    fetch = job.results_page

    def counted(offset: int = 0, limit: int = 1000) -> ResultsPage:
        offsets.append(offset)
        return fetch(offset, limit)

    job.results_page = counted  # type: ignore[method-assign]


def test_a_job_from_submit_to_delete_with_its_results_in_pages(
    live_server: ServerProcess, score_video: Path
) -> None:
    with Client(live_server.url) as client:
        job = client.submit(score_video, pipeline_id="testkit_grey", sample_fps=10)
        seen: list[float] = []
        final = job.wait(timeout=60, on_progress=lambda status: seen.append(status.progress))
        assert (final.status, final.progress, final.job_id) == ("completed", 100.0, job.id)
        assert seen == sorted(seen) and seen[-1] == 100.0

        whole = job.results_page()
        assert whole.frames_analysed == 20 and whole.next is None
        assert whole.pipeline_id == "testkit_grey" and len(whole.items) == 20

        # results that span 7 pages of 3: fetched one page at a time, as the loop gets there
        offsets: list[int] = []
        _counting_pages(job, offsets)
        first_four = list(itertools.islice(job.results(page_size=3), 4))
        assert offsets == [0, 3]
        assert first_four == list(whole.items[:4])
        offsets.clear()
        assert list(job.results(page_size=3)) == list(whole.items)
        assert offsets == list(range(0, 20, 3))

        timeline = job.timeline()
        assert (timeline.job_id, timeline.text, timeline.objects, timeline.shots) == (
            job.id,
            (),
            (),
            (),
        )
        assert job.vtt().startswith("WEBVTT")

        listed = [entry.job_id for entry in client.jobs(pipeline_id="testkit_grey", page_size=1)]
        assert listed.count(job.id) == 1 and len(listed) == len(set(listed))
        (entry,) = [e for e in client.jobs("completed", page_size=2) if e.job_id == job.id]
        assert entry.pipeline_id == "testkit_grey"

        with pytest.raises(ApiError) as ended:
            job.cancel()
        assert ended.value.status_code == 409
        job.delete()
        with pytest.raises(ApiError) as gone:
            job.status()
        assert gone.value.status_code == 404


def test_a_retried_submit_under_one_key_makes_one_job(
    live_server: ServerProcess, score_video: Path
) -> None:
    with Client(live_server.url) as client, score_video.open("rb") as handle:
        first = client.submit(
            handle, pipeline_id="testkit_noop", max_frames=2, idempotency_key="client-e2e"
        )
        again = client.submit(
            score_video, pipeline_id="testkit_noop", max_frames=2, idempotency_key="client-e2e"
        )
        assert again == first
        assert first.wait(timeout=60, poll=TEST_POLL).status == "completed"
        with pytest.raises(ApiError) as unknown:
            client.submit(score_video, pipeline_id="no_such_pipeline")
        assert unknown.value.status_code == 400 and "no_such_pipeline" in unknown.value.detail


def _documented_script() -> str:
    page = (REPO / "docs" / "client.md").read_text()
    section = page.split("## A complete script", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/client.md has no script under 'A complete script'"
    return found[1]


def test_the_documented_script_runs_against_a_real_server(
    live_server: ServerProcess,
    score_video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = tmp_path / "analyse.py"
    script.write_text(_documented_script())
    monkeypatch.setenv("FORGESYTE_URL", live_server.url)
    monkeypatch.delenv("FORGESYTE_API_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", [str(script), str(score_video)])
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"job [0-9a-f-]{36} submitted", printed[0]), printed
    assert printed[1:] == [
        "  0.0-  0.5 s  SCORE 2-1",
        "  1.0-  1.5 s  HALF TIME",
        "4 frames analysed, 4 lines of text read",
    ]
