"""Origins of URLs, read as a browser reads them (for redirects and configured origins)."""

from __future__ import annotations

from urllib.parse import urlsplit


def url_origin(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-case and without a default port; None
    for anything a browser might read another way (user info, backslashes, a bad port or
    bracket) or that is no URL at all."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bracket out of place, a port that is no number or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or "\\" in url or "@" in parts.netloc:
        return None
    host = parts.hostname
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default_port = 80 if scheme == "http" else 443
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


__all__ = ["url_origin"]
