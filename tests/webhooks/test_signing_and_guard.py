"""The documented signature check (run from docs/operations.md as written) and the SSRF guard."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from forgesyte.webhooks.guard import UnsafeCallbackUrl, check_callback_url
from forgesyte.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec-test-secret"


def documented_verify() -> Any:
    """The `verify` function of the snippet in docs/operations.md, executed as written."""
    text = (REPO / "docs" / "operations.md").read_text()
    match = re.search(r"<!-- webhook-verify -->\n```python\n(.*?)```", text, flags=re.S)
    assert match is not None, "the verification snippet is missing from docs/operations.md"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 10, "the snippet is meant to be ten lines"
    namespace: dict[str, Any] = {}
    exec(compile(code, "operations.md", "exec"), namespace)
    return namespace["verify"]


def test_the_documented_snippet_accepts_our_signature_and_nothing_else() -> None:
    verify = documented_verify()
    body = b'{"event_id":"e","job_id":"j","status":"completed","updated_at":"t"}'
    headers = signed_headers(SECRET, body)
    assert verify(SECRET, headers, body)
    assert not verify("another secret", headers, body)
    assert not verify(SECRET, headers, body.replace(b"completed", b"failed"))
    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 3600)
    assert not verify(SECRET, stale, body)
    moved = dict(headers, **{TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)})
    assert not verify(SECRET, moved, body)
    assert not verify(SECRET, {SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, body)
    assert headers[SIGNATURE_HEADER].startswith("sha256=")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.5/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_private_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeCallbackUrl):
        check_callback_url(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hook", "http"),
        ("file:///etc/passwd", "http"),
        ("gopher://127.0.0.1/", "http"),
        ("http:///hook", "no host"),
        ("https://user:pw@127.0.0.1/hook", "credentials"),
        ("http://127.0.0.1:99999/hook", "valid URL"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
        ("http://127.0.0.1/" + "a" * 3000, "longer"),
    ],
)
def test_malformed_targets_are_refused_even_when_private_is_allowed(url: str, why: str) -> None:
    with pytest.raises(UnsafeCallbackUrl, match=why):
        check_callback_url(url, allow_private=True)


def test_allowed_targets() -> None:
    local = check_callback_url("http://localhost:8080/a?b=1", allow_private=True)
    assert (local.host, local.port, local.path) == ("localhost", 8080, "/a?b=1")
    assert local.address in {"127.0.0.1", "::1"}
    # a public literal address passes without any traffic (nothing to resolve)
    public = check_callback_url("https://93.184.216.34/hook", allow_private=False)
    assert (public.scheme, public.port, public.address) == ("https", 443, "93.184.216.34")
