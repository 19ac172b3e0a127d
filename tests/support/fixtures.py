"""Pytest fixtures for the real test services; load with ``pytest_plugins``.

Session-scoped servers start once, on first use, and stop at the end of the run.
A server that cannot start fails the test that needs it (never a skip).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from tests.support import services
from tests.support.services import FAKE_AWS_ENV, PostgresServer, S3Server, ServiceUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for the whole test session."""
    try:
        with services.postgres_server() as server:
            yield server
    except ServiceUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of the session's ``forgesyte_test`` database."""
    return postgres_server.url()


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh empty database for one test; dropped afterwards."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (moto) on 127.0.0.1, with fake AWS credentials set."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_AWS_ENV.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        # A developer's ~/.aws must not leak into the tests; loopback must bypass proxies.
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/forgesyte-test-aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/forgesyte-test-aws-credentials")
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        env.setenv("no_proxy", "127.0.0.1,localhost")
        try:
            with services.s3_server() as server:
                yield server
        except ServiceUnavailableError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def s3_endpoint_url(s3_server: S3Server) -> str:
    """The endpoint URL of the session's S3-compatible server."""
    return s3_server.endpoint_url


@pytest.fixture(scope="session")
def s3_client(s3_server: S3Server) -> S3Client:
    """A boto3 S3 client on the test server."""
    return boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_bucket(s3_client: S3Client) -> Iterator[str]:
    """A fresh empty bucket for one test; emptied and removed afterwards."""
    name = f"forgesyte-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(s3_client.exceptions.NoSuchBucket):
        uploads = s3_client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            s3_client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for item in s3_client.list_objects_v2(Bucket=name).get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=item["Key"])
        s3_client.delete_bucket(Bucket=name)
