"""Smoke test: run the job lifecycle against a live ForgeSyte server.

Usage: JOB_PROCESSING_SMOKE_TEST=1 BASE_URL=http://127.0.0.1:8000 python scripts/smoke_test.py

Makes a short MP4 with known text, submits it with the Python client (forgesyte.client;
the key from FORGESYTE_API_KEY), waits for the job to end, pages through its results, and
exits 0 only if the job completed with results that read the text.
Exit codes: 0 pass, 1 fail, 2 not enabled or misconfigured.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from forgesyte.client import ApiError, Client

EXPECTED_TEXT = "SMOKE 42"
TIMEOUT_S = 180.0


def make_video(path: Path) -> Path:
    """Five frames showing EXPECTED_TEXT."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (320, 180))
    for _ in range(5):
        frame = np.full((180, 320, 3), 255, np.uint8)
        cv2.putText(frame, EXPECTED_TEXT, (30, 105), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
        writer.write(frame)
    writer.release()
    return path


def main() -> int:
    """Run the lifecycle once; print PASS or FAIL with the reason."""
    if os.environ.get("JOB_PROCESSING_SMOKE_TEST") != "1":
        print(
            "set JOB_PROCESSING_SMOKE_TEST=1 (and BASE_URL) to run the smoke test", file=sys.stderr
        )
        return 2
    base_url = os.environ.get("BASE_URL", "").rstrip("/")
    if not base_url:
        print("set BASE_URL to the server, e.g. http://127.0.0.1:8000", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder, Client(base_url) as client:
        try:
            print(f"server: {client.health()}")
            job = client.submit(make_video(Path(folder) / "smoke.mp4"), frame_stride=2)
            print(f"submitted job {job.id}")
            status = job.wait(timeout=TIMEOUT_S)
            print(f"status: {status.raw}")
            if status.status != "completed":
                print(f"FAIL: job ended {status.status}: {status.error_message}")
                return 1
            frames = list(job.results())
        except (ApiError, TimeoutError, OSError) as exc:
            print(f"FAIL: {exc}")
            return 1
    texts = {" ".join(line["text"] for line in f.result.get("ocr", [])) for f in frames}
    if not frames or EXPECTED_TEXT not in texts:
        print(f"FAIL: results lack {EXPECTED_TEXT!r}: {len(frames)} frames, texts {sorted(texts)}")
        return 1
    print(f"PASS: {len(frames)} frames analysed, read {sorted(texts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
