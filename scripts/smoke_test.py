"""Smoke test: run the job lifecycle against a live ForgeSyte server.

Usage: JOB_PROCESSING_SMOKE_TEST=1 BASE_URL=http://127.0.0.1:8000 python scripts/smoke_test.py

Makes a short MP4 with known text, submits it, polls its status until it ends, fetches
its results, and exits 0 only if the job completed with results that read the text.
Exit codes: 0 pass, 1 fail, 2 not enabled or misconfigured.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

EXPECTED_TEXT = "SMOKE 42"
TIMEOUT_S = 180.0


def make_video(path: Path) -> bytes:
    """Five frames showing EXPECTED_TEXT."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (320, 180))
    for _ in range(5):
        frame = np.full((180, 320, 3), 255, np.uint8)
        cv2.putText(frame, EXPECTED_TEXT, (30, 105), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """One HTTP call; returns parsed JSON or raises with the server's detail."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    api_key = os.environ.get("FORGESYTE_API_KEY")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


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
    with tempfile.TemporaryDirectory() as folder:
        video = make_video(Path(folder) / "smoke.mp4")
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="smoke.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\n".encode() + video + f"\r\n--{boundary}--\r\n".encode()
    )
    try:
        health = call(f"{base_url}/healthz")
        print(f"server: {health}")
        created = call(
            f"{base_url}/v1/video/submit?frame_stride=2",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        job_id = created["job_id"]
        print(f"submitted job {job_id}")
        deadline = time.monotonic() + TIMEOUT_S
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = call(f"{base_url}/v1/video/status/{job_id}")
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.25)
        print(f"status: {status}")
        if status.get("status") != "completed":
            print(f"FAIL: job ended {status.get('status')}: {status.get('error_message')}")
            return 1
        results = call(f"{base_url}/v1/video/results/{job_id}")
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        print(f"FAIL: {exc}")
        return 1
    frames = results.get("results", [])
    texts = {" ".join(line["text"] for line in f["result"].get("ocr", [])) for f in frames}
    if not frames or EXPECTED_TEXT not in texts:
        print(f"FAIL: results lack {EXPECTED_TEXT!r}: {len(frames)} frames, texts {sorted(texts)}")
        return 1
    print(f"PASS: {len(frames)} frames analysed, read {sorted(texts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
