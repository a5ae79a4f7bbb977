"""The client's address of a web request, in one place (audit, login lockout, logs).

Behind the README's nginx every request comes from 127.0.0.1. With
``RIS_TRUST_X_FORWARDED_FOR`` on, and only when the request itself comes from one of
``RIS_TRUSTED_PROXIES``, the address is the **right-most untrusted** entry of
X-Forwarded-For: each trusted proxy appends the address it saw, so entries left of that are
whatever the client chose to send and are never believed.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]):
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _ip(value: str):
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _trusted(addr, networks) -> bool:
    return any(addr in net for net in networks)


def client_ip(request) -> str | None:
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    if not getattr(settings, "RIS_TRUST_X_FORWARDED_FOR", False):
        return remote
    networks = _networks(tuple(getattr(settings, "RIS_TRUSTED_PROXIES", ("127.0.0.1", "::1"))))
    remote_ip = _ip(remote or "")
    if remote_ip is None or not _trusted(remote_ip, networks):
        return remote  # not from our proxy: the header is the client's own claim
    header = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed([e for e in header.split(",") if e.strip()]):
        addr = _ip(entry)
        if addr is None:
            break  # garbage from the client side: stop believing the chain
        if not _trusted(addr, networks):
            return str(addr)
    return remote


def axes_client_ip(request) -> str | None:
    """django-axes hook (AXES_CLIENT_IP_CALLABLE): lock out by the same address the audit records."""
    return client_ip(request)
