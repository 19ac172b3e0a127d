"""The page's search box in a real headless Chromium against a real `forgesyte serve`:
results across jobs, each opening its job at its time (`#/jobs/<id>?t=<seconds>`)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from forgesyte.client import Client
from tests.conftest import HALF_TIME_TEXT
from tests.support.server import TEST_POLL, ServerProcess
from tests.web.conftest import NARROW, OpenPage


def _analysed(server: ServerProcess, video: Path) -> str:
    with Client(server.url) as client:
        job = client.submit(video, pipeline_id="ocr_only", frame_stride=5)
        assert job.wait(timeout=120, poll=TEST_POLL).status == "completed"
        return job.id


def test_the_search_box_finds_text_and_opens_the_job_at_its_time(
    web_server: ServerProcess, open_page: OpenPage, score_video: Path
) -> None:
    job_id = _analysed(web_server, score_video)
    page, errors = open_page(web_server.url)
    search = page.get_by_role("search")
    search.get_by_label("Find").fill("HALF TlME")  # an OCR slip: l for I
    search.get_by_role("button", name="Search").click()
    result = page.locator(f'#search-results a[href^="#/jobs/{job_id}"]')
    expect(result).to_have_count(1)
    expect(result).to_have_attribute("href", f"#/jobs/{job_id}?t=1")
    expect(result.locator(".text")).to_have_text(HALF_TIME_TEXT)
    expect(result.locator(".file")).to_have_text("score.mp4")
    expect(result.locator(".time")).to_have_text("00:01.0\u201300:01.5")
    expect(result.locator(".score")).to_have_text("0.88")
    result.click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{job_id}\?t=1$"))
    expect(page.locator("#job-heading")).to_have_text(f"Job {job_id}")
    expect(page.locator("#job-file")).to_have_text("score.mp4")
    expect(page.locator("#timeline-text .entry")).to_have_count(2)

    # the address alone opens the job too (a link shared, a page reloaded)
    again, again_errors = open_page(f"{web_server.url}/#/jobs/{job_id}?t=0.5", NARROW)
    expect(again.locator("#job-heading")).to_have_text(f"Job {job_id}")
    assert errors.unexpected() == [] and again_errors.unexpected() == []


def test_the_search_box_says_what_was_wrong_and_when_nothing_matched(
    web_server: ServerProcess, open_page: OpenPage
) -> None:
    page, errors = open_page(web_server.url)
    search = page.get_by_role("search")
    search.get_by_label("Find").fill("q")
    search.get_by_role("button", name="Search").click()
    expect(page.locator("#search-status")).to_have_text("Type at least 2 characters to search.")
    search.get_by_label("Find").fill("zebra crossing at midnight")
    search.get_by_role("button", name="Search").click()
    expect(page.locator("#search-status")).to_have_text("No matches.")
    search.get_by_label("In", exact=True).select_option("object")
    expect(search.get_by_label("On screen with")).to_be_disabled()
    search.get_by_label("Find").fill("x" * 201)
    search.get_by_role("button", name="Search").click()
    expect(page.locator("#search-status")).to_contain_text("q: must be 2 to 200 characters")
    assert errors.unexpected(lambda message: "400" in message) == []
