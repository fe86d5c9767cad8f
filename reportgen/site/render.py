"""The Jinja2 environment: autoescaping everywhere, undefined names are errors, links relative."""

from __future__ import annotations

import hashlib
import importlib.resources
import posixpath
from pathlib import Path
from typing import Any

import jinja2

from reportgen.paths import NOT_FOUND, asset


def templates_dir() -> Path:
    """The shipped ``templates/`` folder (installed as the ``reportgen.templates`` package)."""
    return Path(str(importlib.resources.files("reportgen.templates")))


def relative_url(target: str, page: str) -> str:
    """Link from the page at site path ``page`` to the site path ``target``.

    Both are POSIX paths relative to the site root (``pairs/cat/index.html``).  Relative links are
    what let the site work from ``file://``, from any sub-path and from a zip.  A trailing
    ``#fragment`` is kept.
    """
    path, hash_mark, fragment = target.partition("#")
    start = posixpath.dirname(page) or "."
    link = posixpath.relpath(path, start) if path else posixpath.basename(page)
    return link + hash_mark + fragment


class Renderer:
    """Renders a template into the page at a given site path."""

    def __init__(self, directory: Path | None = None):
        self.root = directory or templates_dir()  # the templates, and static/ beside them
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.root)),
            autoescape=True,  # every template, whatever its extension
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(
        self,
        template: str,
        page: str,
        context: dict[str, Any],
        aliases: dict[str, str] | None = None,
        base_url: str | None = None,
    ) -> str:
        """Render ``template`` as the page at site path ``page``.

        ``aliases`` redirects links to files stored once for several pages (see
        :meth:`reportgen.site.writer.SiteWriter.copy_tree`).  ``base_url`` gives each page a
        canonical link, and makes the links of ``404.html`` absolute: that page is served at
        whatever path was missing, where relative links would not resolve.  An absolute
        (``https://``) one also gives the link preview (Open Graph) its page and image URLs.
        """
        aliases = aliases or {}
        root = base_url.rstrip("/") + "/" if base_url else None

        def url(target: str) -> str:
            if target.startswith(("http://", "https://")):  # published elsewhere (data.url)
                return target
            path, hash_mark, fragment = target.partition("#")
            path = aliases.get(path, path)
            if page == NOT_FOUND and root:
                return root + path + hash_mark + fragment
            return relative_url(path + hash_mark + fragment, page)

        canonical = root + page if root and page != NOT_FOUND else None
        # Link previews need absolute URLs: a relative og:image is not fetched.
        public = root if root and root.startswith(("http://", "https://")) else None
        image = (context.get("preview") or {}).get("image")
        return self.environment.get_template(template).render(
            **context,
            url=url,
            page_path=page,
            canonical=canonical,
            preview_url=public + page if public and page != NOT_FOUND else None,
            preview_image=public + aliases.get(image, image) if public and image else None,
        )

    def digest(self) -> str:
        """A hash of every template and static file, and of this module (how links are made):
        what a page depends on beside its context."""
        root = self.root
        hashed = hashlib.sha256(Path(__file__).read_bytes())
        for path in sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ):
            hashed.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        return hashed.hexdigest()

    def static_files(self) -> list[tuple[str, Path]]:
        """(site path, source) of the CSS and JS shipped beside the templates."""
        static = self.root / "static"
        return [
            (asset(p.relative_to(static).as_posix()), p)
            for p in sorted(static.rglob("*"))
            if p.is_file()
        ]
