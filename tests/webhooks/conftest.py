"""The API client factory of tests/api, on the store each webhook test chooses."""

from __future__ import annotations

from tests.api.conftest import make_client

__all__ = ["make_client"]
