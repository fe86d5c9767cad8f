"""How a run and a study show themselves in Jupyter (``_repr_html_``): small self-contained
HTML, images inlined as data URLs, every text escaped, links to the pages once a site is built.
"""

from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from reportgen import paths
from reportgen.manifest import Params

if TYPE_CHECKING:
    from reportgen.api.run import Run
    from reportgen.api.study import Study

THUMBNAIL_SIDE = 192  # px, the longest side of an image in a run's summary
STUDY_THUMBNAIL_SIDE = 64
STUDY_ROWS = 50  # runs listed in a study's summary; the rest are counted
# Parameters every summary shows; the others only where they differ from the defaults.
MAIN_PARAMETERS = ("size", "steps", "optimizer", "loss", "content_weight", "style_weight")


def _data_url(image: Image.Image, side: int) -> str:
    thumbnail = image.copy()
    thumbnail.thumbnail((side, side))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(image: Image.Image, caption: str, side: int = THUMBNAIL_SIDE) -> str:
    return (
        '<figure style="display:inline-block;margin:0 8px 4px 0;text-align:center">'
        f'<img src="{_data_url(image, side)}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _link(path: Path, text: str) -> str:
    """A link to a built page, relative to the working folder (a notebook's links resolve from
    its own folder, which is the kernel's)."""
    try:
        href = Path(os.path.relpath(path)).as_posix()
    except ValueError:  # another drive (Windows)
        href = path.as_uri()
    return f'<a href="{escape(href)}" target="_blank">{escape(text)}</a>'


def _parameters(params: Params) -> list[tuple[str, str]]:
    defaults = Params().as_dict()
    values = params.as_dict()
    shown = [(name, values[name]) for name in MAIN_PARAMETERS]
    shown += [
        (name, value)
        for name, value in values.items()
        if name not in MAIN_PARAMETERS and value != defaults[name] and name != "preset"
    ]
    if params.preset:
        shown.insert(0, ("preset", params.preset))
    return [(name, _value(value)) for name, value in shown]


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_value(item)}" for key, item in value.items())
    return str(value)


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><th style="text-align:left">{escape(name)}</th>'
        f'<td style="text-align:left">{escape(value)}</td></tr>'
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def run_html(run: Run) -> str:
    """A run's summary: its three images, its parameters, its final losses and its page."""
    final = run.final_loss
    losses = [("total", f"{final.total:.4g}"), ("content", f"{final.content:.4g}")]
    losses += [(f"style {layer}", f"{value:.4g}") for layer, value in final.style.items()]
    if run.params.tv_weight:
        losses.append(("total variation", f"{final.tv:.4g}"))
    page = run.page
    link = f"<p>{_link(page, 'its page in the site')}</p>" if page and page.is_file() else ""
    return (
        f'<div class="reportgen-run"><h4>{escape(run.title)} '
        f"<small>({escape(run.name)})</small></h4>"
        + _figure(run.content, "content")
        + "".join(_figure(image, caption) for image, caption in _style_captions(run))
        + _figure(run.result, "result")
        + '<div style="display:flex;gap:2em;align-items:flex-start">'
        + f"<div><b>parameters</b>{_table(_parameters(run.params))}</div>"
        + f"<div><b>final loss</b>{_table(losses)}</div></div>"
        + link
        + "</div>"
    )


def _style_captions(run: Run) -> list[tuple[Image.Image, str]]:
    """Each style image and what it is: the style, a blend's with its weight, or a region's."""
    if len(run.styles) == 1:
        return [(run.styles[0], "style")]
    if run.stylisation.region_shares:
        return [(image, f"style of region {k + 1}") for k, image in enumerate(run.styles)]
    weights = run.params.blend_weights
    return [(image, f"style, weight {w:.2g}") for image, w in zip(run.styles, weights, strict=True)]


def study_html(study: Study) -> str:
    """A study's summary: its title, its runs (with their results once computed) and its
    site once built."""
    rows = []
    for spec in study.manifest.runs[:STUDY_ROWS]:
        run = study._runs.get(spec.name)
        result = _figure(run.result, "", STUDY_THUMBNAIL_SIDE) if run else "not computed yet"
        page = study.site / paths.run_page(spec.name) if study.site else None
        name = _link(page, spec.name) if page and page.is_file() else escape(spec.name)
        styles = " + ".join(style.name for style in spec.pair.styles)
        rows.append(
            f"<tr><td style='text-align:left'>{name}</td>"
            f"<td style='text-align:left'>{escape(spec.pair.content.name)}</td>"
            f"<td style='text-align:left'>{escape(styles)}</td>"
            f"<td>{spec.params.size} px, {spec.params.steps} steps</td><td>{result}</td></tr>"
        )
    more = len(study) - STUDY_ROWS
    if more > 0:
        rows.append(f"<tr><td colspan='5'>and {more} more</td></tr>")
    site = study.site / paths.INDEX if study.site else None
    built = f"<p>{_link(site, 'the site')}</p>" if site and site.is_file() else ""
    description = (
        f"<p>{escape(study.manifest.description)}</p>" if study.manifest.description else ""
    )
    return (
        f'<div class="reportgen-study"><h4>{escape(study.title)} '
        f"<small>({len(study)} run{'s' if len(study) != 1 else ''}, "
        f"{escape(study.manifest.path.name)})</small></h4>{description}"
        "<table><tr><th>run</th><th>content</th><th>style</th><th>settings</th>"
        f"<th>result</th></tr>{''.join(rows)}</table>{built}</div>"
    )
