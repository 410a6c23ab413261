"""Pages in Debian's Chromium with everything they do wrong recorded.

Every request a page makes is routed: anything not addressed to the test server (or data:/blob:)
is aborted and recorded, since the map and the OGC pages must work on a network without internet.
Console errors, page errors and responses ≥ 400 are recorded too.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 30_000


@dataclass
class Watched:
    """A page and what it did wrong."""

    page: Any
    outside: list[str] = field(default_factory=list)            # requests that would have left the server
    failed: list[tuple[int, str]] = field(default_factory=list)  # (status, url) of responses ≥ 400; 0: no answer
    errors: list[str] = field(default_factory=list)             # console errors and page errors
    requests: list[str] = field(default_factory=list)           # requests to the server, in order

    def assert_clean(self, *, responses: bool = False) -> None:
        """No request left the server and nothing went wrong in the page (`responses`: nor any
        response ≥ 400)."""
        assert self.outside == [], f"requests leaving the server: {self.outside[:10]}"
        if responses:
            assert self.failed == [], f"responses ≥ 400: {self.failed[:10]}"
        assert self.errors == [], f"browser errors: {self.errors[:10]}"


@contextmanager
def watch(browser: Any, base_url: str, **context_options: Any) -> Iterator[Watched]:
    """A new browser context with one page on which every request is routed and recorded."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    seen = Watched(page)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(base_url + "/") or url.startswith(("data:", "blob:")):
            seen.requests.append(url)
            r.continue_()
        else:
            seen.outside.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("response", lambda resp: seen.failed.append((resp.status, resp.url)) if resp.status >= 400 else None)
    page.on("requestfailed", lambda req: seen.failed.append((0, req.url)) if req.url not in seen.outside else None)
    page.on("console", lambda m: seen.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    try:
        yield seen
    finally:
        context.close()
