"""Where webhooks may be sent. In production an app may not point knowpay at addresses inside
its own network (the cloud's metadata service, localhost, private ranges): that would let any
app make knowpay send requests there (server-side request forgery)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from knowpay.kit.errors import Unprocessable

_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


class WebhookTargetRefused(Unprocessable):
    code, title = "webhook_url_not_allowed", "Webhooks cannot be sent to this URL"


def private_targets_allowed(environment: str, setting: bool | None) -> bool:
    """KNOWPAY_WEBHOOK_PRIVATE_TARGETS, or by default: everywhere but production."""
    return setting if setting is not None else environment != "production"


def check_url(url: str) -> None:
    """WebhookTargetRefused unless `url` is https to a public host name or address (the
    names it resolves to are checked again before every delivery)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise WebhookTargetRefused("Webhook URLs are https:// in production.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        raise WebhookTargetRefused(f"{host or 'The URL'} is not a public host.")
    address = _literal_address(host)
    if address is not None and not address.is_global:
        raise WebhookTargetRefused(f"{host} is not a public address.")


def resolves_publicly(url: str) -> bool:
    """Whether every address the URL's host resolves to now is public (False when it does
    not resolve): checked before each delivery, since DNS may have changed since."""
    host = urlsplit(url).hostname or ""
    literal = _literal_address(host)
    if literal is not None:
        return literal.is_global
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and all(address.is_global for address in addresses)


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
