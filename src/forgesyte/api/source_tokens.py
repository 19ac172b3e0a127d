"""Signed links to one job's video, for a `<video>` element, which cannot send a key header.

A token is ``<expires>.<signature>``: `expires` the Unix second after which it is refused,
`signature` the unpadded base64url HMAC-SHA256, under the signing key, of
``source:<job_id>:<expires>``. So a token opens one job's video, until it expires, and
cannot be altered or moved to another job without the key; it carries no API key.

The signing key is FORGESYTE_SIGNING_SECRET, else one derived from FORGESYTE_API_KEY
(HMAC-SHA256 of a fixed label under the API key): every replica of a deployment shares
the API key already, so they all accept each other's links with nothing more to set. A
server with neither has no key to protect its routes: its links are signed with a random
key of the process and the video route, open like every other, does not check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from forgesyte.settings import Settings

SOURCE_URL_TTL_S = 3600  # seconds a signed link stays valid
KEY_DERIVATION_LABEL = b"forgesyte: signing key of source links"


def signing_key(settings: Settings) -> bytes | None:
    """The key that signs and checks links: the signing secret, else derived from the API
    key; None when the server has neither (its routes are open)."""
    if settings.signing_secret:
        return settings.signing_secret.encode()
    if settings.api_key:
        return hmac.new(settings.api_key.encode(), KEY_DERIVATION_LABEL, hashlib.sha256).digest()
    return None


class TokenRefused(Exception):
    """A link's token does not open this job's video now; the message says why."""


@dataclass(frozen=True)
class SourceTokens:
    """Issues and checks the tokens of signed links (`checked`: whether they are checked)."""

    key: bytes
    checked: bool

    @classmethod
    def for_settings(cls, settings: Settings) -> SourceTokens:
        """The tokens of this server: checked when it has a key to sign them with."""
        key = signing_key(settings)
        if key is None:
            return cls(secrets.token_bytes(32), checked=False)
        return cls(key, checked=True)

    def _signature(self, job_id: uuid.UUID, expires: int) -> str:
        message = f"source:{job_id}:{expires}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, job_id: uuid.UUID, now_s: float) -> tuple[str, int]:
        """A token for one job's video and the Unix second it expires at."""
        expires = int(now_s) + SOURCE_URL_TTL_S
        return f"{expires}.{self._signature(job_id, expires)}", expires

    def check(self, job_id: uuid.UUID, token: str, now_s: float) -> None:
        """Accept the token for this job now, or raise TokenRefused saying why."""
        expires_text, _, signature = token.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            raise TokenRefused("the link's token is malformed; ask for a new link")
        expected = self._signature(job_id, int(expires_text))
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise TokenRefused("the link's token is not valid for this job; ask for a new link")
        if now_s > int(expires_text):
            raise TokenRefused("the link has expired; ask for a new link")
