"""The web page at / in a real headless Chromium, against real `forgesyte serve` processes.

The player itself (video, overlay, lanes, keys, address, signed links) is in test_player.py.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, Request, expect

from forgesyte.jobs.options import JobOptions
from tests.conftest import HALF_TIME_TEXT, SCORE_TEXT
from tests.support.server import ServerProcess, submit
from tests.web.conftest import API_KEY, NARROW, OpenPage


def _submit(page: Page, video: Path, pipeline_id: str, **options: str) -> str:
    """Fill the form, press Analyse, wait for the upload; the new job's id."""
    page.get_by_label("Video", exact=True).set_input_files(str(video))
    page.get_by_label("Pipeline", exact=True).select_option(pipeline_id)
    for name, value in options.items():
        page.locator(f"#option-{name}").fill(value)
    # the id from the upload's own answer: other tests' jobs also reach the shared list
    with page.expect_response(lambda r: "/v1/video/submit" in r.url) as upload:
        page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#upload-text")).to_have_text("uploaded")
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    job_id = str(upload.value.json()["job_id"])
    expect(_job(page, job_id)).to_be_visible()
    return job_id


def _job(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#jobs li[data-job-id="{job_id}"]')


def test_options_come_from_the_openapi_schema_with_their_descriptions(
    web_server: ServerProcess, open_page: OpenPage
) -> None:
    page, errors = open_page(web_server.url)
    for name, info in JobOptions.model_fields.items():
        field = page.locator(f"#option-{name}")
        expect(field).to_be_visible()
        assert info.description
        expect(page.locator(f"#option-{name}-desc")).to_have_text(info.description)
        expect(field).to_have_attribute("aria-describedby", f"option-{name}-desc")
    expect(page.locator("#option-frame_stride")).to_have_attribute("min", "1")
    expect(page.locator("#option-sample_fps")).to_have_attribute("max", "1000")
    expect(page.locator("#option-skip_unchanged")).to_have_attribute("type", "checkbox")
    pipelines = page.get_by_label("Pipeline", exact=True).locator("option")
    expect(pipelines.filter(has_text="testkit_noop")).to_have_count(1)
    assert errors.unexpected() == []


def test_submit_progress_timeline_preview_and_downloads(
    web_server: ServerProcess, open_page: OpenPage, score_video: Path, tmp_path: Path
) -> None:
    page, errors = open_page(web_server.url)
    # a slow job first: its progress is seen moving in the job list
    slow_id = _submit(page, score_video, "testkit_sleep", max_frames="10")
    seen = set()
    status = _job(page, slow_id).locator(".status")
    expect(status).to_contain_text("running")
    while "completed" not in (text := status.inner_text()):
        seen.add(text)
        page.wait_for_timeout(100)
    assert any(re.fullmatch(r"running ([1-9]\d?)%", text) for text in seen), seen
    expect(_job(page, slow_id).locator("progress")).to_have_js_property("value", 100)

    # OCR on every fifth frame: a real timeline
    job_id = _submit(page, score_video, "ocr_only", frame_stride="5")
    expect(_job(page, job_id).locator(".status")).to_have_text("completed 100%")
    _job(page, job_id).get_by_role("button", name=f"Open job {job_id[:8]}").click()
    expect(page.locator("#job-heading")).to_have_text(f"Job {job_id}")
    entries = page.locator("#timeline-text .entry")
    expect(entries).to_have_count(2)
    expect(entries.nth(0)).to_contain_text(SCORE_TEXT)
    expect(entries.nth(0).locator(".time")).to_have_text("00:00.0\u201300:00.5")
    expect(entries.nth(1)).to_contain_text(HALF_TIME_TEXT)
    expect(page.locator("#timeline-objects")).to_contain_text("No objects found.")

    # the finished job opens in the player; a timeline entry plays from its start
    expect(page.locator("#player-video")).to_have_js_property("readyState", 4)
    entries.nth(1).click()
    expect(page.locator("#player-status")).to_contain_text(": frame 10 (")
    assert page.evaluate("document.getElementById('player-video').currentTime") == 1.0

    downloads = {}
    for name, suffix in (
        ("Results (JSON)", "json"),
        ("Results (JSON Lines)", "jsonl"),
        ("Subtitles (WebVTT)", "vtt"),
    ):
        with page.expect_download() as started:
            page.get_by_role("button", name=name).click()
        download = started.value
        assert download.suggested_filename == f"{job_id}.{suffix}"
        target = tmp_path / download.suggested_filename
        download.save_as(target)
        downloads[suffix] = target.read_text()
    results = json.loads(downloads["json"])
    assert [entry["frame_index"] for entry in results["results"]] == [0, 5, 10, 15]
    lines = [json.loads(line) for line in downloads["jsonl"].splitlines()]
    assert lines == results["results"]
    assert downloads["vtt"].startswith("WEBVTT")
    assert SCORE_TEXT in downloads["vtt"] and HALF_TIME_TEXT in downloads["vtt"]
    assert errors.unexpected() == []


def test_a_refused_upload_shows_the_servers_reason(
    web_server: ServerProcess, open_page: OpenPage, tmp_path: Path
) -> None:
    page, errors = open_page(web_server.url)
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_bytes(b"just some text, not a video")
    jobs_before = httpx.get(f"{web_server.url}/v1/video/jobs").json()["jobs"]
    page.get_by_label("Video", exact=True).set_input_files(str(not_a_video))
    page.get_by_role("button", name="Analyse").click()
    expect(page.get_by_role("alert").first).to_contain_text("MP4")
    expect(page.locator("#upload-text")).to_have_text("refused")
    assert httpx.get(f"{web_server.url}/v1/video/jobs").json()["jobs"] == jobs_before
    # the refused POST is logged by the browser as a failed resource; nothing else is
    assert errors.unexpected(lambda m: "status of 400" in m and "/submit" in m) == []


def test_the_key_prompt_a_wrong_key_and_previews_with_the_key_header(
    keyed_server: ServerProcess, open_page: OpenPage, score_video: Path
) -> None:
    page, errors = open_page(keyed_server.url)
    urls: list[str] = []
    headers: list[tuple[str, dict[str, str]]] = []

    def on_request(request: Request) -> None:
        urls.append(request.url)
        if "/v1/" in request.url:
            headers.append((request.url, request.headers))

    page.on("request", on_request)
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill("not-the-key")
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog.get_by_role("alert")).to_contain_text("refused")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(API_KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(
        page.get_by_label("Pipeline", exact=True).locator("option[value=testkit_grey]")
    ).to_have_count(1)

    job_id = _submit(page, score_video, "testkit_grey", frame_stride="4")
    expect(_job(page, job_id).locator(".status")).to_have_text("completed 100%")
    _job(page, job_id).get_by_role("button", name=f"Open job {job_id[:8]}").click()
    expect(page.locator("#job-summary")).to_contain_text("Completed")
    frame = httpx.get(
        f"{keyed_server.url}/v1/video/results/{job_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()["results"][1]["frame_index"]
    page.evaluate("frame => showPreview(frame, 'grey')", frame)
    image = page.locator("#preview-image")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(image).to_have_js_property("naturalWidth", 320)

    # the key is kept for the browser session: a reload asks nothing
    page.reload()
    expect(
        page.get_by_label("Pipeline", exact=True).locator("option[value=testkit_grey]")
    ).to_have_count(1)
    expect(page.get_by_role("dialog", name="API key")).to_be_hidden()
    assert not any(API_KEY in url or "not-the-key" in url for url in urls)
    # every API request carries the key header, but the video's: a <video> cannot send one,
    # and its signed link carries a token
    keyed = [h for url, h in headers if "/v1/video/source/" not in url]
    assert keyed and all(h.get("authorization") == f"Bearer {API_KEY}" for h in keyed[-3:])
    played = [url for url, _ in headers if "/v1/video/source/" in url]
    assert played and all("token=" in url for url in played)
    # the browser logs each 401 the page answered with the prompt; nothing else
    assert errors.unexpected(lambda m: "status of 401" in m) == []


def test_the_narrow_page_fits_and_its_controls_are_labelled_and_reachable(
    web_server: ServerProcess, open_page: OpenPage, score_video: Path
) -> None:
    page, errors = open_page(web_server.url, viewport=NARROW)
    expect(page.locator("#option-frame_stride")).to_be_visible()
    job_id = _submit(page, score_video, "testkit_noop", max_frames="3")
    expect(_job(page, job_id).locator(".status")).to_have_text("completed 100%")
    _job(page, job_id).get_by_role("button", name=f"Open job {job_id[:8]}").click()
    expect(page.locator("#timeline-text")).to_contain_text("No text found.")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"the page is {width} px wide at {NARROW['width']} px"

    # every control has an accessible name
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
            .filter(el => !el.closest('[hidden], dialog:not([open])'))
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.outerHTML)""")
    assert unlabelled == []
    # the keyboard reaches the form from the top of the page (past the search box), in
    # order (the page loaded afresh at the job's address)
    page.reload()
    expect(page.locator("#timeline-text")).to_contain_text("No text found.")
    wanted = [
        "video",
        "pipeline",
        *(f"option-{name}" for name in JobOptions.model_fields),
        "analyse",
    ]
    reached: list[str] = []
    for _ in range(len(wanted) + 11):  # the search box's controls and the rest before the form
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert [r for r in reached if r in wanted] == wanted, reached
    assert errors.unexpected() == []


def test_cancel_and_delete_from_the_job_list(
    web_server: ServerProcess, open_page: OpenPage, score_video: Path
) -> None:
    page, errors = open_page(web_server.url)
    job_id = _submit(page, score_video, "testkit_sleep")
    job = _job(page, job_id)
    expect(job.locator(".status")).to_contain_text("running")
    job.get_by_role("button", name=f"Cancel job {job_id[:8]}").click()
    expect(job.locator(".status")).to_contain_text("cancelled")
    expect(job.get_by_role("button", name=f"Cancel job {job_id[:8]}")).to_have_count(0)
    job.get_by_role("button", name=f"Delete job {job_id[:8]}").click()
    expect(job).to_have_count(0)
    assert httpx.get(f"{web_server.url}/v1/video/status/{job_id}").status_code == 404
    # the list is the server's: a job submitted elsewhere shows up, live
    other = submit(web_server.url, score_video.read_bytes(), pipeline_id="testkit_noop")
    other_id = other.json()["job_id"]
    expect(_job(page, other_id).locator(".status")).to_have_text("completed 100%")
    expect(_job(page, other_id).locator(".pipeline")).to_have_text("testkit_noop")
    assert errors.unexpected() == []


def test_a_viewer_key_sees_the_jobs_but_no_upload_form_and_no_delete(
    keyed_server: ServerProcess, open_page: OpenPage, score_video: Path
) -> None:
    admin = {"Authorization": f"Bearer {API_KEY}"}
    made = httpx.post(
        f"{keyed_server.url}/v1/keys",
        json={"name": f"viewer-{uuid.uuid4().hex[:8]}", "role": "viewer"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    job_id = submit(
        keyed_server.url, score_video.read_bytes(), headers=admin, pipeline_id="testkit_noop"
    ).json()["job_id"]
    page, errors = open_page(keyed_server.url)
    dialog = page.get_by_role("dialog", name="API key")
    dialog.get_by_label("API key").fill(made.json()["key"])
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(_job(page, job_id).locator(".status")).to_have_text("completed 100%")
    expect(page.get_by_role("heading", name="Analyse a video")).to_be_hidden()
    expect(page.locator("#submit-form")).to_be_hidden()
    expect(page.get_by_role("button", name=f"Delete job {job_id[:8]}")).to_have_count(0)
    expect(page.get_by_role("button", name=f"Open job {job_id[:8]}")).to_be_visible()
    assert errors.unexpected(lambda m: "status of 401" in m) == []
