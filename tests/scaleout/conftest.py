"""Scale-out deployments for real: PostgreSQL jobs, S3 storage, separate processes.

Each test gets a fresh PostgreSQL database and a fresh bucket on the S3-compatible
test server, and the FORGESYTE_* settings that point every process at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from forgesyte.db.engine import create_db_engine
from tests.support.server import TESTKIT_PIPELINES

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
