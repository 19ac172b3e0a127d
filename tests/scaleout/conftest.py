"""Scale-out deployments for real: PostgreSQL jobs, S3 storage, separate processes.

Each test gets a fresh PostgreSQL database and a fresh bucket on the S3-compatible
test server, and the FORGESYTE_* settings that point every process at them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from forgesyte.db.engine import create_db_engine
from tests.support.server import (
    FORGESYTE,
    TESTKIT_PIPELINES,
    ServerProcess,
    WorkerProcess,
    api_and_workers,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_PREFIX = "forgesyte"


@dataclass
class ScaleOutDeployment:
    """Where a scale-out deployment keeps its jobs and files, and the settings naming them."""

    database_url: str
    engine: Engine  # the test's own view of the jobs table
    s3: S3Client
    bucket: str
    env: dict[str, str]
    logs: Path

    def object_keys(self, folder: str) -> list[str]:
        """Keys (below the prefix) of the objects in a folder: "videos" or "results"."""
        prefix = f"{S3_PREFIX}/{folder}/"
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys.extend(
                str(item["Key"]).removeprefix(f"{S3_PREFIX}/") for item in page.get("Contents", [])
            )
        return sorted(keys)

    def upgrade_schema(self, env: dict[str, str]) -> str:
        """Run `forgesyte db upgrade` with these settings; its output (it must succeed)."""
        upgraded = subprocess.run(
            [FORGESYTE, "db", "upgrade"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        return upgraded.stdout

    @contextlib.contextmanager
    def api_and_workers(
        self, api_dir: Path, env: dict[str, str], processes: int, concurrency: int = 1
    ) -> Iterator[tuple[ServerProcess, list[WorkerProcess]]]:
        """The schema migrated, `serve --workers 0`, and `processes` `worker` processes of
        `concurrency` loops each, every analysis child loaded; all killed afterwards."""
        upgraded = self.upgrade_schema(env)
        assert "schema revision: 0005_keys" in upgraded
        with api_and_workers(api_dir, self.logs, env, processes, concurrency) as running:
            yield running

    def unfinished_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        uploads = self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(str(upload["Key"]) for upload in uploads)


@pytest.fixture
def deployment(
    postgres_database_url: str,
    s3_client: S3Client,
    s3_bucket: str,
    s3_endpoint_url: str,
    tmp_path: Path,
) -> Iterator[ScaleOutDeployment]:
    """A fresh PostgreSQL database and bucket, and the settings every process gets."""
    env = {
        "FORGESYTE_DATABASE_URL": postgres_database_url,
        "FORGESYTE_STORAGE_URL": f"s3://{s3_bucket}/{S3_PREFIX}",
        "FORGESYTE_S3_ENDPOINT_URL": s3_endpoint_url,
        "FORGESYTE_DATA_DIR": str(tmp_path / "data"),  # holds nothing: jobs and files are elsewhere
        "FORGESYTE_PIPELINES_DIR": str(TESTKIT_PIPELINES),
    }
    engine = create_db_engine(postgres_database_url)
    yield ScaleOutDeployment(
        postgres_database_url, engine, s3_client, s3_bucket, env, tmp_path / "logs"
    )
    engine.dispose()
