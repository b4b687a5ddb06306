"""Who a request comes from, for the rate limiter, with X-Forwarded-For from trusted proxies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import ip_address

from slowapi import Limiter
from starlette.requests import Request

from app.core.config import Network, Settings


def _is_trusted(host: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ip_address(host.strip())
    except ValueError:
        return False
    return any(address in network for network in trusted)


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """The peer, or, when the peer is a trusted proxy, the nearest untrusted X-Forwarded-For hop.

    Each proxy appends the address it received from, so the header is read right to left and the
    first hop that is not a trusted proxy is the client; anything left of it is the client's own
    claim and could be forged. uvicorn's proxy-headers middleware applies the same rule, so a
    peer it has already rewritten is not trusted and is returned as is.
    """
    peer = request.client.host if request.client is not None else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def make_limiter(settings: Settings) -> Limiter:
    trusted = settings.TRUSTED_PROXIES
    key: Callable[[Request], str] = lambda request: client_address(request, trusted)  # noqa: E731
    return Limiter(
        key_func=key, default_limits=[settings.RATE_LIMIT], enabled=settings.RATE_LIMIT_ENABLED
    )
