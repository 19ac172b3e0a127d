"""The client knows HTTP and the job options, nothing else of the server: importing it in a
fresh interpreter loads no web framework, database, settings or video library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "duckdb",
    "psycopg",
    "alembic",
    "pydantic_settings",
    "boto3",
    "botocore",
    "numpy",
    "cv2",
    "av",
    "onnxruntime",
    "rapidocr",
    "rich",
    "httpx",
)
ALLOWED = {"forgesyte", "forgesyte.jobs", "forgesyte.jobs.options"}  # the options' one definition


def test_importing_the_client_loads_only_itself_and_the_job_options() -> None:
    probe = (
        "import json, sys\n"
        "from forgesyte.client import Client, Job, ApiError\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    ours = {name for name in loaded if name == "forgesyte" or name.startswith("forgesyte.")}
    assert "forgesyte.client" in ours
    assert {name for name in ours if not name.startswith("forgesyte.client")} == ALLOWED
    assert sorted(name for name in HEAVY if name in loaded) == []
