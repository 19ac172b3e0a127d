"""The player on the page, in a real headless Chromium against real `forgesyte serve` processes.

Two jobs of the testkit's `marks` pipeline: an H.264 upload (played as it is) and an
MPEG-4 Part 2 one (OpenCV's mp4v: played from the copy its analysis child made). The marks
are drawn at known pixels (tests/support/videos.py), so the overlay is checked where a box
is and where nothing was found.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from forgesyte.api.source_tokens import SOURCE_URL_TTL_S, SourceTokens
from forgesyte.client import ApiError, Client
from forgesyte.settings import Settings
from tests.support.server import ServerProcess, submit_video, wait_for_end
from tests.support.videos import (
    MARKS_SIZE_WH,
    marks_boxes,
    write_counter_video,
    write_marks_video,
)
from tests.web.conftest import API_KEY, NARROW, OpenPage

FRAMES = 30  # at 10 fps: 3 s, every frame analysed
FPS = 10

# the overlay's canvas pixel (its alpha, the most of a 5x5 patch) over a pixel of the video,
# the video's picture placed in its element as object-fit: contain places it
OVERLAY_ALPHA_AT = """([x, y, width, height]) => {
  const video = document.getElementById('player-video');
  const canvas = document.getElementById('player-overlay');
  const ratio = window.devicePixelRatio || 1;
  const scale = Math.min(video.clientWidth / width, video.clientHeight / height);
  const left = (video.clientWidth - width * scale) / 2;
  const top = (video.clientHeight - height * scale) / 2;
  const px = Math.round((left + x * scale) * ratio);
  const py = Math.round((top + y * scale) * ratio);
  const data = canvas.getContext('2d').getImageData(px - 2, py - 2, 5, 5).data;
  let alpha = 0;
  for (let i = 3; i < data.length; i += 4) alpha = Math.max(alpha, data[i]);
  return alpha;
}"""


def _job(server: ServerProcess, video: Path, api_key: str | None = None) -> str:
    job_id = submit_video(
        server.url, video.read_bytes(), pipeline_id="testkit_marks", api_key=api_key
    )
    status, _ = wait_for_end(server.url, job_id, timeout_s=120, api_key=api_key)
    assert status.status == "completed" and status.playable, status
    return job_id


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("player-videos")
    return {
        codec: write_marks_video(folder / f"{codec}.mp4", FRAMES, codec=codec, fps=FPS)
        for codec in ("h264", "mp4v")
    }


@pytest.fixture(scope="module")
def jobs(web_server: ServerProcess, videos: dict[str, Path]) -> dict[str, str]:
    """A finished marks job of each codec on the shared server."""
    return {codec: _job(web_server, video) for codec, video in videos.items()}


def _open(
    open_page: OpenPage, server: ServerProcess, job_id: str, t: float | None = None, **kwargs: Any
) -> tuple[Page, Any]:
    suffix = "" if t is None else f"?t={t}"
    page, errors = open_page(f"{server.url}/#/jobs/{job_id}{suffix}", **kwargs)
    expect(page.locator("#player-video")).to_have_js_property("readyState", 4)
    return page, errors


def _at_frame(page: Page, frame: int) -> None:
    expect(page.locator("#player-status")).to_contain_text(f": frame {frame} (analysed frame ")


def _alpha(page: Page, x: float, y: float) -> int:
    return int(page.evaluate(OVERLAY_ALPHA_AT, [x, y, *MARKS_SIZE_WH]))


def _square_top_edge(frame: int) -> tuple[float, float]:
    x1, y1, x2, _ = marks_boxes(frame, FRAMES)["square"]
    return (x1 + x2) / 2, y1


def _left_edge(frame: int, mark: str) -> tuple[float, float]:
    """The middle of a mark's left edge on a frame (its box's outline is drawn there)."""
    x1, y1, _, y2 = marks_boxes(frame, FRAMES)[mark]
    return x1, (y1 + y2) / 2


def _current_time(page: Page) -> float:
    return float(page.evaluate("document.getElementById('player-video').currentTime"))


def _wait_for(page: Page, predicate: str, timeout_s: float = 30.0) -> None:
    """Poll a JavaScript function until it is true (the page's CSP forbids the eval that
    Page.wait_for_function needs)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"never true: {predicate}"
        page.wait_for_timeout(50)


def test_a_deep_link_lands_at_its_time_with_the_boxes_found_there(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = _open(open_page, web_server, jobs["h264"], 1.5)
    _at_frame(page, 15)
    assert abs(_current_time(page) - 1.5) < 0.05
    assert page.evaluate("location.hash") == f"#/jobs/{jobs['h264']}?t=1.5"
    assert _alpha(page, *_square_top_edge(15)) > 200  # the square's box, at its edge
    assert _alpha(page, *_left_edge(15, "tile")) > 200  # the tile, found from frame 15 on
    assert _alpha(page, *_left_edge(15, "bar")) > 200  # the text line's box
    assert _alpha(page, 150, 50) == 0  # inside the square: boxes are outlines
    assert _alpha(page, 300, 15) == 0 and _alpha(page, 60, 90) == 0  # nothing found there
    assert errors.unexpected() == []


def test_results_are_fetched_a_page_at_a_time_around_the_current_time(
    web_server: ServerProcess, open_page: OpenPage, tmp_path: Path
) -> None:
    video = write_counter_video(tmp_path / "long.mp4", 450, fps=10.0)  # 45 s, 450 frames
    job_id = submit_video(web_server.url, video.read_bytes(), pipeline_id="testkit_noop")
    status, _ = wait_for_end(web_server.url, job_id, timeout_s=120)
    assert status.status == "completed", status
    page, errors = open_page(web_server.url)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/results/" in r.url else None)
    page.goto(f"{web_server.url}/#/jobs/{job_id}?t=40")
    expect(page.locator("#player-status")).to_contain_text(": frame 400 (analysed frame 401 of")
    page.locator("#player-video").focus()
    page.keyboard.press("ArrowLeft")  # the frame before: on the page before
    expect(page.locator("#player-status")).to_contain_text(": frame 399 (")
    pages = sorted({re.search(r"offset=(\d+)&limit=(\d+)", url).groups() for url in asked})
    assert pages == [("0", "200"), ("200", "200"), ("400", "200")], asked
    assert errors.unexpected() == []


def test_after_a_seek_the_boxes_are_those_of_the_new_time(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = _open(open_page, web_server, jobs["h264"], 1.5)
    _at_frame(page, 15)
    page.evaluate("playerSeek(0.52)")  # between frames 5 and 6: frame 5 is at or before it
    _at_frame(page, 5)
    assert _alpha(page, *_square_top_edge(5)) > 200
    assert _alpha(page, *_square_top_edge(15)) == 0  # where the square was: nothing now
    assert _alpha(page, *_left_edge(15, "tile")) == 0  # the tile is not there yet
    assert errors.unexpected() == []


def test_lanes_show_what_was_found_and_a_click_seeks_there(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = _open(open_page, web_server, jobs["h264"])
    lanes = page.locator("#lanes .lane")
    expect(lanes).to_have_count(3)  # text, then one row per class
    expect(lanes.locator(".lane-name")).to_have_text(["Text", "square", "tile"])
    expect(page.locator("#lanes .lane-text")).to_have_text(["TOP", "BOTTOM"])
    tile = page.get_by_role("button", name="tile #2, 00:01.5 to 00:03.0: play from here")
    tile.click()
    _at_frame(page, 15)
    assert abs(_current_time(page) - 1.5) < 0.05
    expect(tile).to_have_class("lane-item lane-object on")
    expect(page.locator("#player-now li")).to_have_count(3)  # BOTTOM, square, tile
    expect(page.locator("#player-now img").first).to_have_attribute("src", re.compile("^blob:"))
    expect(page.locator("#player-now img").first).to_have_js_property("complete", True)
    page.locator("#lanes .lane-text", has_text="TOP").click()
    _at_frame(page, 0)
    expect(page).to_have_url(re.compile(rf"#/jobs/{jobs['h264']}\?t=0\.0$"))
    # the timeline's lists seek the player too
    page.locator("#timeline-text .entry", has_text="BOTTOM").click()
    _at_frame(page, 15)
    assert errors.unexpected() == []


def test_space_plays_and_pauses_and_the_arrows_step_through_analysed_frames(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = _open(open_page, web_server, jobs["h264"], 1.0)
    _at_frame(page, 10)
    page.locator("#player-video").focus()
    page.keyboard.press("ArrowRight")
    _at_frame(page, 11)
    page.keyboard.press("ArrowRight")
    _at_frame(page, 12)
    page.keyboard.press("ArrowLeft")
    _at_frame(page, 11)
    video = page.locator("#player-video")
    expect(video).to_have_js_property("paused", True)
    page.keyboard.press("Space")
    expect(video).to_have_js_property("paused", False)
    _wait_for(page, "() => document.getElementById('player-video').currentTime > 1.4")
    page.keyboard.press("Space")
    expect(video).to_have_js_property("paused", True)
    stopped = _current_time(page)
    page.wait_for_timeout(300)
    assert _current_time(page) == stopped
    assert errors.unexpected() == []


def test_the_mpeg4_part_2_job_plays_from_its_h264_copy(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    job_id = jobs["mp4v"]
    head = httpx.get(
        f"{web_server.url}/v1/video/source/{job_id}", headers={"Range": "bytes=0-4095"}
    )
    assert head.status_code == 206 and b"avc1" in head.content  # H.264, index first
    page, errors = _open(open_page, web_server, job_id)
    video = page.locator("#player-video")
    expect(video).to_have_js_property("videoWidth", MARKS_SIZE_WH[0])
    page.locator("#player-video").focus()
    page.keyboard.press("Space")
    _wait_for(
        page,
        "() => { const v = document.getElementById('player-video');"
        " return (v.currentTime > 1.0 && !v.paused) || v.ended; }",
    )
    assert page.evaluate("document.getElementById('player-video').error") is None
    page.evaluate("document.getElementById('player-video').pause()")
    _at_frame(page, int(_current_time(page) * FPS + 1e-6))
    assert errors.unexpected() == []


def test_the_address_follows_the_job_and_the_back_button_returns(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = open_page(web_server.url)
    for codec in ("h264", "mp4v"):
        page.locator(f'#jobs li[data-job-id="{jobs[codec]}"] .job-title button').click()
        expect(page.locator("#job-heading")).to_have_text(f"Job {jobs[codec]}")
        expect(page.locator("#player-video")).to_have_js_property("readyState", 4)
    expect(page).to_have_url(re.compile(rf"#/jobs/{jobs['mp4v']}(\?t=0\.0)?$"))
    page.get_by_role("button", name=re.compile("^BOTTOM, ")).click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{jobs['mp4v']}\?t=1\.5$"))
    page.go_back()
    expect(page.locator("#job-heading")).to_have_text(f"Job {jobs['h264']}")
    expect(page.locator("#player-video")).to_have_attribute("src", re.compile(jobs["h264"]))
    page.go_back()
    expect(page.locator("#job-view")).to_be_hidden()
    page.go_forward()
    expect(page.locator("#job-heading")).to_have_text(f"Job {jobs['h264']}")
    assert errors.unexpected() == []


def test_on_a_narrow_screen_the_lanes_stack_under_the_video(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    page, errors = _open(open_page, web_server, jobs["h264"], 1.5, viewport=NARROW)
    _at_frame(page, 15)
    stage = page.locator("#player-stage").bounding_box()
    lanes = page.locator("#lanes").bounding_box()
    side = page.locator(".player-side").bounding_box()
    assert stage and lanes and side
    assert lanes["y"] >= stage["y"] + stage["height"]  # under the video, not beside it
    assert side["y"] >= lanes["y"] + lanes["height"]
    assert stage["width"] <= NARROW["width"] and lanes["width"] <= NARROW["width"]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"the page is {width} px wide at {NARROW['width']} px"
    assert _alpha(page, *_square_top_edge(15)) > 200
    assert errors.unexpected() == []


def test_a_job_with_nothing_to_play_shows_its_frames_instead(
    web_server: ServerProcess, jobs: dict[str, str], open_page: OpenPage
) -> None:
    def not_playable(route: Route) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "playable": False})

    page, errors = open_page(web_server.url)
    page.route(f"**/v1/video/status/{jobs['h264']}", not_playable)
    page.goto(f"{web_server.url}/#/jobs/{jobs['h264']}")
    expect(page.locator("#player-status")).to_contain_text("no video a browser can play")
    expect(page.locator("#player-stage")).to_be_hidden()
    page.locator("#timeline-text .entry", has_text="BOTTOM").click()
    image = page.locator("#preview-image")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(image).to_have_js_property("naturalWidth", MARKS_SIZE_WH[0])
    expect(page.locator("#preview-caption")).to_contain_text("Frame 15")
    assert errors.unexpected() == []


# -- signed links, with a key on the server -------------------------------------------------


@pytest.fixture(scope="module")
def keyed_job(keyed_server: ServerProcess, videos: dict[str, Path]) -> str:
    return _job(keyed_server, videos["h264"], api_key=API_KEY)


def _keyed_page(open_page: OpenPage, server: ServerProcess) -> Page:
    page, _ = open_page(server.url)
    page.evaluate("key => sessionStorage.setItem('forgesyte.apiKey', key)", API_KEY)
    return page


def test_with_a_key_the_video_comes_from_a_signed_link_with_no_key_in_it(
    keyed_server: ServerProcess, keyed_job: str, open_page: OpenPage
) -> None:
    page = _keyed_page(open_page, keyed_server)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{keyed_server.url}/#/jobs/{keyed_job}?t=1.5")
    expect(page.locator("#player-status")).to_contain_text(": frame 15 (")
    source = page.evaluate("document.getElementById('player-video').currentSrc")
    assert f"/v1/video/source/{keyed_job}?token=" in source
    assert not any(API_KEY in url for url in urls)
    assert _alpha(page, *_square_top_edge(15)) > 200


@pytest.fixture
def minted() -> Iterator[SourceTokens]:
    yield SourceTokens.for_settings(Settings(api_key=API_KEY))


@pytest.mark.parametrize("kind", ["wrong", "expired"])
def test_a_wrong_or_expired_token_shows_an_error_not_a_blank_player(
    keyed_server: ServerProcess,
    keyed_job: str,
    open_page: OpenPage,
    minted: SourceTokens,
    kind: str,
) -> None:
    page = _keyed_page(open_page, keyed_server)
    if kind == "wrong":
        token, _ = SourceTokens(b"not the server's key", checked=True).issue(
            uuid.UUID(keyed_job), time.time()
        )
        detail = "not valid for this job"
    else:
        token, _ = minted.issue(uuid.UUID(keyed_job), time.time() - SOURCE_URL_TTL_S - 60)
        detail = "expired"
    link = f"{keyed_server.url}/v1/video/source/{keyed_job}?token={token}"
    asked: list[str] = []

    def give_the_bad_link(route: Route) -> None:
        asked.append(route.request.url)
        route.fulfill(json={"url": link, "expires_at": "2026-01-01T00:00:00Z"})

    page.route(f"**/v1/video/source-url/{keyed_job}", give_the_bad_link)
    page.goto(f"{keyed_server.url}/#/jobs/{keyed_job}")
    error = page.locator("#player-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The video could not be played: the link")
    expect(error).to_contain_text(detail)
    # an expired link is asked for again once, then the error stays
    assert len(asked) == (2 if kind == "expired" else 1)


def test_a_job_with_its_shots_has_a_lane_of_them_with_their_thumbnails(
    web_server: ServerProcess, videos: dict[str, Path], open_page: OpenPage
) -> None:
    job_id = submit_video(
        web_server.url, videos["h264"].read_bytes(), pipeline_id="testkit_marks", detect_shots=True
    )
    status, _ = wait_for_end(web_server.url, job_id, timeout_s=120)
    assert status.status == "completed", status
    page, errors = _open(open_page, web_server, job_id, 0.5)
    expect(page.locator("#lanes .lane-name")).to_have_text(["Text", "square", "tile", "Shots"])
    shot = page.locator("#lanes .lane-shot")
    # the marks video changes at frame 15 (the tile comes, the bar moves): a cut there
    expect(shot).to_have_text(["shot 1", "shot 2"])
    expect(page.locator("#player-now li", has_text="shot 1").locator("img")).to_have_js_property(
        "complete", True
    )
    assert errors.unexpected() == []


def test_the_python_client_reads_what_the_player_reads(
    web_server: ServerProcess, jobs: dict[str, str], videos: dict[str, Path]
) -> None:
    """Job.source_url, write_source, track_ids, thumbnail and preview on the same jobs."""
    with Client(web_server.url) as client:
        job = client.job(jobs["h264"])
        link = job.source_url()
        assert link.expires_at > datetime.now(UTC) and "token=" in link.url
        assert httpx.get(link.url, headers={"Range": "bytes=4-7"}).content == b"ftyp"
        played = io.BytesIO()
        assert job.write_source(played) == videos["h264"].stat().st_size
        assert played.getvalue() == videos["h264"].read_bytes()  # H.264 plays as uploaded
        copy = io.BytesIO()
        client.job(jobs["mp4v"]).write_source(copy)
        assert copy.getvalue()[4:8] == b"ftyp" and copy.getvalue() != videos["mp4v"].read_bytes()

        frames = list(job.track_ids(page_size=7))  # paged: 30 frames in 5 pages
        assert [f.frame_index for f in frames] == [e.frame_index for e in job.results()]
        tracks = {t.track_id for t in job.timeline().objects}
        assert {i for f in frames for i in f.track_ids} == tracks and tracks
        assert job.thumbnail("object", 0)[:3] == job.preview(0)[:3] == b"\xff\xd8\xff"  # JPEG
        with pytest.raises(ApiError) as missing:
            job.thumbnail("object", len(tracks))
        assert missing.value.status_code == 404
