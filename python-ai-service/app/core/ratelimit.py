"""Who a request comes from, for the rate limiter, with X-Forwarded-For from trusted proxies."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from slowapi import Limiter
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Network, Settings


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded_for: list[str], trusted: Sequence[Network]) -> str | None:
    """When the peer is a trusted proxy, the nearest X-Forwarded-For hop that is not one.

    Each proxy appends the address it received from, so the header is read right to left and the
    first hop that is not a trusted proxy is the client; anything left of it is the client's own
    claim. A hop that is no IP address ends the walk: the key is then the last address a trusted
    proxy vouched for. None: the peer stays the client.
    """
    address = _address(peer)
    if address is None or not any(address in network for network in trusted):
        return None
    client = None
    for hop in reversed(",".join(forwarded_for).split(",")):
        if not hop.strip():
            continue
        if (address := _address(hop)) is None:
            break
        client = str(address)
        if not any(address in network for network in trusted):
            break
    return client


class ForwardedForMiddleware:
    """The client's address from X-Forwarded-For set from a trusted proxy, for the rate limit's
    key and uvicorn's access log (which reads the same scope)."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app, self.trusted = app, trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted and scope["type"] == "http" and scope.get("client"):
            forwarded = Headers(scope=scope).getlist("x-forwarded-for")
            if forwarded and (
                client := forwarded_client(scope["client"][0], forwarded, self.trusted)
            ):
                scope["client"] = (client, 0)  # in place: uvicorn logs this scope
        await self.app(scope, receive, send)


def make_limiter(settings: Settings) -> Limiter:
    return Limiter(
        key_func=_client, default_limits=[settings.RATE_LIMIT], enabled=settings.RATE_LIMIT_ENABLED
    )


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
