"""Where webhooks may be sent. In production an app may not point knowpay at addresses inside
its own network (the cloud's metadata service, localhost, private ranges): that would let any
app make knowpay send requests there (server-side request forgery).

An address counts by what it reaches: an IPv6 form that carries an IPv4 address (mapped,
6to4, NAT64, IPv4-compatible) counts as that IPv4 address. A name counts by every address it
resolves to, when the endpoint is made and again at every send, and the send goes to the very
address that was checked (so a name that resolves elsewhere a moment later changes nothing).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from knowpay.kit.errors import Unprocessable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class WebhookTargetRefused(Unprocessable):
    code, title = "webhook_url_not_allowed", "Webhooks cannot be sent to this URL"


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """A send to the checked address: the URL names it, the Host header and TLS name the
    host the app gave."""

    url: str
    host_header: str
    server_name: str


def private_targets_allowed(environment: str, setting: bool | None) -> bool:
    """KNOWPAY_WEBHOOK_PRIVATE_TARGETS, or by default: everywhere but production."""
    return setting if setting is not None else environment != "production"


def check_url(url: str) -> None:
    """WebhookTargetRefused unless `url` is https to a public host (a name that does not
    resolve now is taken; it is checked again before every send)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise WebhookTargetRefused("Webhook URLs are https:// in production.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        raise WebhookTargetRefused(f"{host or 'The URL'} is not a public host.")
    addresses = _addresses(host)
    if addresses and not all(is_public(address) for address in addresses):
        raise WebhookTargetRefused(f"{host} is not a public address.")


def pin(url: str) -> PinnedTarget | None:
    """The send, pinned to an address the URL's host resolves to now, when every one of them
    is public; None otherwise (not resolvable, or reaching inside the network)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    addresses = _addresses(host)
    if not addresses or not all(is_public(address) for address in addresses):
        return None
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = f"{host}:{parts.port}" if parts.port else host
    return PinnedTarget(urlunsplit(parts._replace(netloc=netloc)), host_header, host)


def is_public(address: Address) -> bool:
    """Whether the address reaches the public internet, judged by the IPv4 address an IPv6
    form carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL or address.teredo is not None:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded.is_global
    return address.is_global


def _addresses(host: str) -> list[Address]:
    """The host's addresses: itself when it is one, else what it resolves to (none when it
    does not resolve). getaddrinfo also reads the numeric forms (`2130706433`, `0x7f.1`)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
