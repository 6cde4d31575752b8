"""Who the client is when knowpay sits behind reverse proxies.

`X-Forwarded-For` and `X-Forwarded-Proto` are believed only when the peer that sent the
request is one of the configured trusted proxies (`KNOWPAY_TRUSTED_PROXIES`, addresses or
networks); otherwise anyone could name any address and dodge a per-IP limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies whose forwarding headers are believed."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip()
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str | None) -> bool:
        """Whether `address` is one of the trusted proxies."""
        if not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_ip(self, scope: Scope) -> str:
        """The client's address: the peer, or, when the peer is a trusted proxy, the last
        address in X-Forwarded-For that is not itself a trusted proxy."""
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        if not self.trusts(peer):
            return peer
        forwarded = _header(scope, b"x-forwarded-for")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()] if forwarded else []
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop if is_ip_address(hop) else peer
        return hops[0] if hops and is_ip_address(hops[0]) else peer

    def is_https(self, scope: Scope) -> bool:
        """Whether the client reached knowpay over TLS (directly, or as a trusted proxy says)."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        client = scope.get("client")
        if client and self.trusts(str(client[0])):
            proto = _header(scope, b"x-forwarded-proto")
            return proto.split(",")[0].strip().lower() == "https"
        return False


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def is_ip_address(value: str) -> bool:
    """Whether the text is an IPv4 or IPv6 address (a peer may be a socket name instead)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
