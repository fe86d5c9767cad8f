"""``reportgen serve``: build, serve the site on localhost, rebuild when an input changes.

The site is served under the path of ``--base-url`` (``/study/``), as GitHub Pages serves a
project site under ``/<repo>/``, so that what works here works there.  Inputs are watched by
polling their modification times once a second; results come from the cache, so a changed title
or template re-renders pages without recomputing anything.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from reportgen.errors import ReportgenError
from reportgen.manifest import load_manifest
from reportgen.site.render import templates_dir


def base_path(base_url: str | None) -> str:
    """``https://u.github.io/repo`` or ``/repo`` -> ``/repo/``; nothing -> ``/``."""
    path = urlsplit(base_url).path if base_url else "/"
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves ``directory`` under ``prefix``; ``/`` redirects there, anything else is a 404."""

    prefix = "/"

    def send_head(self) -> BinaryIO | None:  # the standard handler's hook
        path = urlsplit(self.path).path
        if self.prefix != "/" and path in ("/", self.prefix.rstrip("/")):
            self.send_response(302)
            self.send_header("Location", self.prefix)
            self.end_headers()
            return None
        if not path.startswith(self.prefix):
            self.send_error(404, "outside the site")
            return None
        self.path = "/" + self.path[len(self.prefix) :]
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:  # the terminal is for the build's
        pass


def watched_files(manifest_path: Path) -> list[Path]:
    """The manifest, every image it names, and every template and asset."""
    files = [manifest_path]
    try:
        manifest = load_manifest(manifest_path)
        files += [
            path for pair in manifest.pairs for path in (pair.content, *pair.styles, *pair.masks)
        ]
    except ReportgenError:
        pass  # an invalid manifest is still watched, so fixing it triggers a build
    files += [p for p in templates_dir().rglob("*") if p.is_file()]
    return files


def _snapshot(files: list[Path]) -> dict[Path, int]:
    stamps = {}
    for file in files:
        try:
            stamps[file] = file.stat().st_mtime_ns
        except OSError:
            stamps[file] = -1
    return stamps


def serve(
    manifest_path: Path,
    site_dir: Path,
    rebuild: Callable[[], object],
    host: str = "127.0.0.1",
    port: int = 8000,
    base_url: str | None = None,
    on_ready: Callable[[str], None] = lambda url: None,
    on_error: Callable[[str], None] = lambda message: None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``site_dir`` and call ``rebuild()`` whenever a watched file changes, until ``stop``
    is set (or Ctrl-C).  ``rebuild`` errors are reported through ``on_error``; the last good
    site stays served."""
    prefix = base_path(base_url)
    handler = type("Handler", (_Handler,), {"prefix": prefix})
    server = http.server.ThreadingHTTPServer(
        (host, port), functools.partial(handler, directory=str(site_dir))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    on_ready(f"http://{host}:{server.server_address[1]}{prefix}")
    stop = stop or threading.Event()
    files = watched_files(manifest_path)
    stamps = _snapshot(files)
    try:
        while not stop.wait(1.0):
            current = _snapshot(files)
            if current == stamps:
                continue
            if current.get(manifest_path) != stamps.get(manifest_path):
                files = watched_files(manifest_path)  # the manifest may name other images now
                current = _snapshot(files)
            stamps = current
            try:
                rebuild()
            except ReportgenError as error:
                on_error(error.format_message())
    finally:
        server.shutdown()
        server.server_close()
