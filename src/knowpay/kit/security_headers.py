"""Security headers on every response: Content-Security-Policy (per path prefix),
X-Content-Type-Options, X-Frame-Options, Referrer-Policy, Strict-Transport-Security when
the request came over TLS (or knowpay's public URL is https), and `Cache-Control: no-store`
on the API under /v1/.

A policy may name `{inline-script-hashes}`: for an HTML response the middleware then reads
the page, hashes each inline `<script>` and inline event handler (`onload="…"`), and puts
their `'sha256-…'` sources there. So a page such as Swagger UI or the gateway's
auto-submitting form runs exactly its own inline code and nothing injected into it, without
`'unsafe-inline'`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knowpay.kit.config import SecurityHeaderSettings
from knowpay.kit.proxies import TrustedProxies

INLINE_HASHES = "{inline-script-hashes}"

DOCS_CSP = (
    "default-src 'self'; "
    f"script-src 'self' https://cdn.jsdelivr.net {INLINE_HASHES}; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""What FastAPI's Swagger UI (/docs) loads: its bundle and CSS from jsDelivr, one inline
script (hashed, not `'unsafe-inline'`), the favicon from fastapi.tiangolo.com."""


SANDBOX_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
"""The gateway simulators' pages (`knowpay demo` mounts them under /sandbox/): stand-ins for
the gateways' own sites, with their inline styles and scripts (the UnionPay result page posts
the payer back by itself) and forms that go back to the merchant wherever it is."""


def gateway_form_csp(*targets: str) -> str:
    """The policy of a page that posts the payer's browser on to a gateway: no resources, its
    one inline handler (hashed), and forms may go only to the gateway's origin."""
    origins = sorted({_origin(target) for target in targets if _origin(target)})
    form_action = " ".join(origins) or "'none'"
    return (
        "default-src 'none'; "
        f"script-src 'unsafe-hashes' {INLINE_HASHES}; "
        f"form-action {form_action}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class SecurityHeadersMiddleware:
    """Adds the security headers; headers an endpoint set itself are left as they are."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: SecurityHeaderSettings,
        proxies: TrustedProxies,
        public_url: str,
        policies: Mapping[str, str | Callable[[], str]] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.proxies = proxies
        self.public_https = public_url.startswith("https://")
        merged = {**(policies or {}), **settings.csp_by_prefix}
        # Longest prefix first, so /forms/unionpay can differ from /forms/.
        self.policies = sorted(merged.items(), key=lambda item: len(item[0]), reverse=True)
        hsts = f"max-age={settings.hsts_max_age_s}"
        if settings.hsts_include_subdomains:
            hsts += "; includeSubDomains"
        self.hsts = hsts if settings.hsts_max_age_s > 0 else None

    def policy_for(self, path: str) -> str:
        """The policy for a path: the longest matching prefix's (a callable one is asked on
        each request, for a policy that follows settings changed while running)."""
        for prefix, policy in self.policies:
            if path.startswith(prefix):
                return policy() if callable(policy) else policy
        return self.settings.content_security_policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy_for(scope["path"])
        fixed: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", self.settings.referrer_policy.encode("latin-1")),
        ]
        if self.hsts and (self.public_https or self.proxies.is_https(scope)):
            fixed.append((b"strict-transport-security", self.hsts.encode("latin-1")))
        if scope["path"].startswith("/v1/"):
            # Tokens, secrets shown once, personal data: never kept by a cache (RFC 6749 5.1
            # for the token; the pages are marked the same way by their renderer).
            fixed.append((b"cache-control", b"no-store"))

        def finish(message: Message, csp: str) -> None:
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            extra = [*fixed, (b"content-security-policy", csp.encode("latin-1"))]
            headers.extend((name, value) for name, value in extra if name not in present)
            message["headers"] = headers

        if INLINE_HASHES not in policy:

            async def send_plain(message: Message) -> None:
                if message["type"] == "http.response.start":
                    finish(message, policy)
                await send(message)

            await self.app(scope, receive, send_plain)
            return

        start: Message | None = None
        chunks: list[bytes] = []

        async def send_hashed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if not _is_html(message):
                    finish(message, _with_hashes(policy, []))
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            finish(start, _with_hashes(policy, _inline_hashes(body.decode("utf-8", "replace"))))
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_hashed)


def _with_hashes(policy: str, hashes: list[str]) -> str:
    return " ".join(policy.replace(INLINE_HASHES, " ".join(hashes)).split()).replace(" ;", ";")


def _is_html(message: Message) -> bool:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value).lower().startswith(b"text/html")
    return False


class _InlineCode(HTMLParser):
    """Collects inline scripts and inline event handlers of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.code: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.lower().startswith("on") and value:
                self.code.append(value)
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._script = []

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.code.append("".join(self._script))
            self._script = None


def _inline_hashes(html: str) -> list[str]:
    parser = _InlineCode()
    parser.feed(html)
    parser.close()
    hashes: list[str] = []
    for code in parser.code:
        digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")
        source = f"'sha256-{digest}'"
        if source not in hashes:
            hashes.append(source)
    return hashes
