"""The results document: deterministic JSON, written atomically to storage."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID


def build_results_document(
    job_id: UUID, pipeline_id: str, options: dict[str, Any], analysis: dict[str, Any]
) -> dict[str, Any]:
    """The stored results of a job: identity, options, video metadata and per-frame results."""
    return {"job_id": str(job_id), "pipeline_id": pipeline_id, "options": options, **analysis}


def encode_results(document: dict[str, Any]) -> bytes:
    """Serialise deterministically: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def summarise(document: dict[str, Any]) -> dict[str, Any]:
    """The small summary kept on the job row."""
    return {
        "frames_analysed": int(document.get("frames_analysed", 0)),
        "video": document.get("video", {}),
    }
