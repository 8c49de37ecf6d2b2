"""What keeps the page and POST /commands from being used by another site: the page's
headers (no framing, no inline script, no sniffing), and the checks a browser's
cross-site request cannot pass (a JSON content type, and an Origin that is ours)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .commands import Refusal

# Everything the page loads is its own (app.js, live.js, app.css); it calls only its own
# origin; no site may frame it (clickjacking a "Accept" button).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: Final = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """Adds HEADERS to every answer of the gateway (the page, its scripts, the API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def json_only(request: Request) -> Refusal | None:
    """A command is JSON, said so: a cross-site form cannot send `application/json` without
    a CORS preflight, which the gateway never grants."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return None
    return Refusal(
        415,
        "unsupported_media_type",
        f"a command is sent as Content-Type: application/json, not {media_type or 'none'}",
    )


def same_origin(request: Request, allowed: Collection[str]) -> Refusal | None:
    """A browser names the page that sends a request in Origin: it must be the gateway's own
    origin (as the browser addressed it) or one of GATEWAY_ALLOWED_ORIGINS. No Origin is a
    client that is not a browser (the CLI, curl), which another site cannot drive."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin == own or origin in allowed:
        return None
    return Refusal(
        403,
        "cross_origin",
        f"a command from a page at {origin} is refused: only this gateway's own page "
        f"({own}) may send commands (GATEWAY_ALLOWED_ORIGINS adds others)",
    )
