"""Browsing a built site as a reviewer does: Debian's Chromium driven by Playwright, the site
served over HTTP under a sub-path (as GitHub Pages serves a project site), every problem of a
page load recorded.

Importing this skips the importing test module when the ``playwright`` package or a Chromium
binary is missing (Playwright's own browser download is never used).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

try:
    from playwright.sync_api import Error as PlaywrightError  # noqa: F401 - for the tests
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "the playwright package is not installed (pip install playwright; never 'playwright "
        "install')",
        allow_module_level=True,
    )


def _find_chromium() -> str | None:
    for candidate in (
        os.environ.get("REPORTGEN_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _find_chromium()
if CHROMIUM is None:  # pragma: no cover - depends on the environment
    pytest.skip(
        "no Chromium binary (/usr/bin/chromium, or set REPORTGEN_CHROMIUM)", allow_module_level=True
    )

CHROMIUM_ARGS = [
    "--no-sandbox",  # running as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PREFIX = "/study/"

# --- the server -----------------------------------------------------------------------------------


class _SubPathHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of ``directory`` under ``/study/``; everything else (folders too) is a
    404."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".webp": "image/webp",
        ".js": "text/javascript",
        ".css": "text/css",
        ".json": "application/json",
        ".npz": "application/octet-stream",
        ".zip": "application/zip",
    }

    def send_head(self):  # noqa: D102 - the standard handler's hook
        path = unquote(urlsplit(self.path).path)
        if not path.startswith(PREFIX):
            self.send_error(404)
            return None
        root = Path(self.directory).resolve()
        target = (root / path[len(PREFIX) :]).resolve()
        if root not in target.parents or not target.is_file():
            self.send_error(404)
            return None
        self.path = "/" + target.relative_to(root).as_posix()
        return super().send_head()

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass


@dataclass(frozen=True)
class Server:
    origin: str  # http://127.0.0.1:PORT
    base: str  # http://127.0.0.1:PORT/study/
    site: Path

    def url(self, page: str) -> str:
        return self.base + page


class _QuietServer(http.server.ThreadingHTTPServer):
    """A page left at once (the keys' tests do that) drops its images' connections half sent:
    that is the browser leaving, not an error worth a traceback in the test log."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(site: Path):
    """``site`` served under /study/ on a free port of 127.0.0.1."""
    with socket.socket() as probe:  # a free port, so the server's own error is clear if it is taken
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    httpd = _QuietServer(
        ("127.0.0.1", port), functools.partial(_SubPathHandler, directory=str(site))
    )
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="site-server", daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{port}"
    try:
        yield Server(origin, origin + PREFIX, site)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium for the test module."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """What the browser saw of one page load: problems as readable lines."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


def open_page(context, server: Server, page_path: str, visit: Visit, *, wait_until: str = "load"):
    """A new page of ``context`` at ``page_path``, with every problem recorded in ``visit``.

    Requests that leave ``/study/`` on the test server are aborted and recorded.
    """
    page = context.new_page()

    def route(route):
        url = route.request.url
        if url.startswith(server.base):
            route.continue_()
        else:
            visit.foreign_requests.append(url)
            route.abort()

    page.route("**/*", route)
    page.on(
        "console",
        lambda message: (
            visit.console_errors.append(
                f"console: {message.text} "
                f"({message.location.get('url')}:{message.location.get('lineNumber')})"
            )
            if message.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda error: visit.console_errors.append(f"uncaught: {error}"))
    page.on(
        "requestfailed",
        lambda request: (
            visit.failed_requests.append(f"{request.url}: {request.failure}")
            if request.url.startswith(server.base)
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            visit.failed_requests.append(f"{response.url}: HTTP {response.status}")
            if response.status >= 400
            else None
        ),
    )
    page.goto(server.url(page_path), wait_until=wait_until)
    return page


# In-page helpers (JavaScript), each returning plain data.

LOAD_IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  return images.map((img) => ({
    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth,
  }));
}"""
