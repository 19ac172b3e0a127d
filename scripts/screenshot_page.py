"""Screenshots of the web page for the README, taken the way the browser tests drive it.

Starts a real `forgesyte serve` on a free port and writes, in docs/images/:

- page-wide.png (1280 px) and page-narrow.png (390 px): a small text video made here,
  analysed from the page (OCR on every fifth frame), the finished job open;
- player-wide.png and player-narrow.png: the player on a street video made here from
  Debian's darknet photos (a pan across dog.jpg with a number plate on the truck, then across
  person.jpg; mp4v, so it plays from its H.264 copy), analysed with `detect_ocr` at two
  frames a second, opened at a time with boxes on screen.

    uv run python scripts/screenshot_page.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugins.photos import photo  # noqa: E402
from tests.support.server import ServerProcess, submit_video, wait_for_end  # noqa: E402
from tests.support.videos import write_text_video  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, NARROW, UI_TIMEOUT_MS, WIDE  # noqa: E402

IMAGES = ROOT / "docs" / "images"
STREET_FPS = 10
PAN_FRAMES = 50  # per photo: 5 s
PLAYER_AT_S = 2.0  # the time the player screenshots are taken at


def analyse(page: Page, video: Path) -> None:
    """Submit the video from the page and open the finished job."""
    page.get_by_label("Video", exact=True).set_input_files(str(video))
    page.get_by_label("Pipeline", exact=True).select_option("ocr_only")
    page.locator("#option-frame_stride").fill("5")
    page.get_by_role("button", name="Analyse").click()
    job = page.locator("#jobs li").first
    expect(job.locator(".status")).to_have_text("completed 100%", timeout=UI_TIMEOUT_MS)
    job.locator(".job-title button").click()
    expect(page.locator("#player-video")).to_have_js_property("readyState", 4)


def street_video(path: Path) -> Path:
    """A 640x360 mp4v video panning across dog.jpg (a plate on the truck), then person.jpg."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), STREET_FPS, (640, 360))
    try:
        for name in ("dog", "person"):
            image = photo(name)
            crop_w = image.shape[1] - PAN_FRAMES
            crop_h = min(image.shape[0], crop_w * 9 // 16)
            top = (image.shape[0] - crop_h) // 2
            for index in range(PAN_FRAMES):
                crop = image[top : top + crop_h, index : index + crop_w]
                frame = cv2.resize(crop, (640, 360), interpolation=cv2.INTER_AREA)
                if name == "dog":  # a number plate on the truck's door, inside its box
                    x = 470 - 2 * index
                    cv2.rectangle(frame, (x, 32), (x + 100, 58), (255, 255, 255), -1)
                    cv2.putText(
                        frame, "KX 4718", (x + 4, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2
                    )
                writer.write(frame)
    finally:
        writer.release()
    return path


def player_shots(browser: Browser, server: ServerProcess, job_id: str) -> None:
    """The player at PLAYER_AT_S, wide and narrow."""
    for name, viewport in (("player-wide.png", WIDE), ("player-narrow.png", NARROW)):
        page = browser.new_page(viewport=viewport)
        page.goto(f"{server.url}/#/jobs/{job_id}?t={PLAYER_AT_S}")
        expect(page.locator("#player-status")).to_contain_text("analysed frame", timeout=60_000)
        expect(page.locator("#player-now img").first).to_have_js_property("complete", True)
        page.wait_for_timeout(500)  # the thumbnails' decoding
        page.locator("#job-view").screenshot(path=str(IMAGES / name))
        print(IMAGES / name)
        page.close()


def main() -> int:
    """Take the screenshots; print their paths."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        video = write_text_video(
            folder / "video.mp4", ["SCORE 2-1"] * 10 + ["HALF TIME"] * 10, size_wh=(320, 180)
        )
        street = street_video(folder / "street.mp4")
        server = ServerProcess(folder / "server", workers=1).start()
        try:
            street_job = submit_video(
                server.url, street.read_bytes(), pipeline_id="detect_ocr", sample_fps=2
            )
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name, viewport in (("page-wide.png", WIDE), ("page-narrow.png", NARROW)):
                    page = browser.new_page(viewport=viewport)
                    page.goto(server.url)
                    analyse(page, video)
                    page.screenshot(path=str(IMAGES / name), full_page=True)
                    print(IMAGES / name)
                    page.close()
                status, _ = wait_for_end(server.url, street_job, timeout_s=600)
                if status.status != "completed":
                    raise RuntimeError(f"the street job ended {status.status}")
                player_shots(browser, server, street_job)
                browser.close()
        finally:
            server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
