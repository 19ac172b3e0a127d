"""Screenshots of the web page for the README, taken the way the browser tests drive it.

Starts a real `forgesyte serve` on a free port, analyses a small text video made here
(OCR on every fifth frame), opens the finished job and its first timeline entry, and writes
docs/images/page-wide.png (1280 px) and docs/images/page-narrow.png (390 px).

    uv run python scripts/screenshot_page.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess  # noqa: E402
from tests.support.videos import write_text_video  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, NARROW, UI_TIMEOUT_MS, WIDE  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def analyse(page: Page, video: Path) -> None:
    """Submit the video from the page and open the finished job's first frame."""
    page.get_by_label("Video", exact=True).set_input_files(str(video))
    page.get_by_label("Pipeline", exact=True).select_option("ocr_only")
    page.locator("#option-frame_stride").fill("5")
    page.get_by_role("button", name="Analyse").click()
    job = page.locator("#jobs li").first
    expect(job.locator(".status")).to_have_text("completed 100%", timeout=UI_TIMEOUT_MS)
    job.locator(".job-title button").click()
    page.locator("#timeline-text .entry").first.click()
    expect(page.locator("#preview-image")).to_have_js_property("complete", True)


def main() -> int:
    """Take both screenshots; print their paths."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        video = write_text_video(
            folder / "video.mp4", ["SCORE 2-1"] * 10 + ["HALF TIME"] * 10, size_wh=(320, 180)
        )
        server = ServerProcess(folder / "server", workers=1).start()
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name, viewport in (("page-wide.png", WIDE), ("page-narrow.png", NARROW)):
                    page = browser.new_page(viewport=viewport)
                    page.goto(server.url)
                    analyse(page, video)
                    page.screenshot(path=str(IMAGES / name), full_page=True)
                    print(IMAGES / name)
                    page.close()
                browser.close()
        finally:
            server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
