"""Which callback URLs the server may POST to: a guard against server-side request forgery.

Only http and https. The host is resolved, and an address in loopback, private, link-local
(cloud metadata lives there: 169.254.169.254), unspecified, multicast or reserved space is
refused unless the operator allows private targets (FORGESYTE_WEBHOOK_ALLOW_PRIVATE=true).
The sender checks again at every attempt and connects to the address it checked, so a name
that resolves elsewhere later (DNS rebinding) does not get through either.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_METADATA_HOSTS = {"metadata.google.internal", "metadata"}


class UnsafeCallbackUrl(ValueError):
    """The callback URL is not one the server will call; the message says why."""


@dataclass(frozen=True)
class CallbackTarget:
    """A checked callback URL: where to connect and what to ask for."""

    scheme: str
    host: str  # as written in the URL (the Host header, TLS server name)
    port: int
    path: str  # path and query
    address: str  # the resolved address that passed the check


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or not address.is_global
    )


def check_callback_url(url: str, *, allow_private: bool) -> CallbackTarget:
    """Parse, resolve and check a callback URL; raise UnsafeCallbackUrl naming the problem."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeCallbackUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeCallbackUrl("callback_url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeCallbackUrl("callback_url must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise UnsafeCallbackUrl("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeCallbackUrl("callback_url must not carry credentials")
    port = port or (443 if parts.scheme == "https" else 80)
    if not allow_private and host.lower().rstrip(".") in _METADATA_HOSTS:
        raise UnsafeCallbackUrl("callback_url names a cloud metadata service")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeCallbackUrl("callback_url's host does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeCallbackUrl("callback_url's host does not resolve")
    if not allow_private:
        for address in addresses:
            if _refused(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UnsafeCallbackUrl(
                    "callback_url resolves to a loopback, private, link-local or otherwise "
                    "non-public address (set FORGESYTE_WEBHOOK_ALLOW_PRIVATE=true to allow it)"
                )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return CallbackTarget(parts.scheme, host, port, path, addresses[0])
