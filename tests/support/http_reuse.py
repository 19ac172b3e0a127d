"""A pytest plugin: httpx's one-off calls in the tests share one default SSL context.

``httpx.get(...)``, ``httpx.post(...)`` and every new ``httpx.Client`` build a verifying
SSL context, which loads certifi's CA bundle: about 40 ms of CPU each time, against
about 2 ms for the request itself. The tests speak plain HTTP to loopback servers, and
their wait loops poll several times a second, so on a two-core machine that cost was a
large share of the whole run's CPU. The context is the same one httpx would build (same
CA bundle, same settings); only its construction happens once per test process.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from httpx._transports import default as httpx_transports

_create_ssl_context = httpx_transports.create_ssl_context


@functools.cache
def _default_context(trust_env: bool) -> ssl.SSLContext:
    return _create_ssl_context(verify=True, cert=None, trust_env=trust_env)


def _shared_default_context(
    verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
) -> ssl.SSLContext:
    """httpx's own context for these arguments, built once for the default (verify=True)."""
    if verify is True and cert is None:
        return _default_context(trust_env)
    return _create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)


def pytest_configure() -> None:
    """Make new httpx transports reuse one default SSL context for this test process."""
    httpx_transports.create_ssl_context = _shared_default_context  # type: ignore[assignment]
