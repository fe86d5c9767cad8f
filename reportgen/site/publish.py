"""Phase two of a build: every file of the new site staged, then swapped in at once.

Pages, archive volumes and figures of distances that an earlier build made for the same inputs
are linked from the cache; those made now are kept in the cache once the site is swapped in, so
that a failed build leaves the cache as it was.  With ``data: {folder: ...}`` the data files go
to a folder of their own, prepared and swapped in with the site.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reportgen.errors import BuildError
from reportgen.manifest import Manifest
from reportgen.paths import (
    FILTERS_RECORD,
    GRAMS,
    NO_JEKYLL,
    NOT_FOUND,
    RECORD,
    ROLES,
    SITEMAP,
    distances_figure,
    filter_page,
    filter_visualisation,
    image_file,
    in_run,
    run_dir,
    shared_between_runs,
)
from reportgen.site.archive import ArchivedRun, volumes
from reportgen.site.distances import StyleComparison, style_comparisons
from reportgen.site.distances import digest as comparison_digest
from reportgen.site.distances import keep as keep_comparisons
from reportgen.site.filters import EXAMPLE_SIDE, FilterAtlas, example_path, filter_atlas
from reportgen.site.footprint import LIMIT_BYTES, advice, weigh
from reportgen.site.footprint import describe as describe_weights
from reportgen.site.pages import Page, build_pages, distances_as_table, not_found_page, sitemap
from reportgen.site.record import RunRecord
from reportgen.site.render import Renderer
from reportgen.site.writer import SiteWriter, site_lock
from reportgen.stages.cache import Caches
from reportgen.stages.fingerprint import STAGE_VERSIONS
from reportgen.stages.fingerprint import digest as fingerprint_digest
from reportgen.stages.pipeline import Gathered
from reportgen.timing import PhaseTimes

log = logging.getLogger(__name__)

PAGES_WARNING_BYTES = 800_000_000  # GitHub Pages publishes sites of up to 1 GB

# Draws the clustered figure of one layer's distances between the study's styles into a file
# (the figures' code, handed in by the build: this phase imports no plotting library).
DistanceFigure = Callable[[StyleComparison, Path], None]
# One filter-page example to draw from an image: (the crop's box, the box of the receptive field
# in it, both in the image's pixels; the file to write).
ExampleBoxes = tuple[tuple[int, int, int, int], tuple[int, int, int, int], Path]
# Draws the examples cut from one image file: (the file, its examples, the side to show them at).
ExampleCrops = Callable[[Path, Sequence[ExampleBoxes], int], None]
EXAMPLES_VERSION = 1  # of how the example crops are drawn: kept crops of another are redrawn


@dataclass(frozen=True)
class Published:
    pages: int
    weights: dict[str, int]  # bytes of the site, by kind of file
    site_bytes: int


def publish(
    manifest: Manifest,
    gathered: Gathered,
    caches: Caches,
    site_dir: Path,
    base_url: str | None,
    *,
    times: PhaseTimes,
    draw_distances: DistanceFigure,
    draw_examples: ExampleCrops,
    before_commit: Callable[[], None],
) -> Published:
    """Stage every file of the new site (and of its data folder), then swap them in.

    ``before_commit`` runs once everything is staged and nothing swapped (``--strict`` refuses
    the warnings logged until then)."""
    runs = {run.name: run for run in manifest.runs}
    with times.timed("records"):
        records = {
            name: RunRecord.of(runs[name], manifest, r.transfer, r.analysis, r.figures)
            for name, r in gathered.results.items()
        }
        record_files = {
            name: json.dumps(record.as_json(), indent=1) for name, record in records.items()
        }  # data/pair.json
    renderer = Renderer()
    with times.timed("comparisons"):
        comparisons = style_comparisons(manifest, gathered.results, caches.distances())
    with times.timed("filters"):
        atlas = filter_atlas(manifest, gathered)
    # (a file of the new site or data folder, where to keep it), once they are in place
    to_keep: list[tuple[Path, Path]] = []
    apart = manifest.data_folder is not None
    data_dir = manifest.data_folder if manifest.data_folder is not None else site_dir
    # The files of a run's folder that are data: with a data folder, they go there.
    data_files = (
        {image_file(role) for role in ROLES} | ({GRAMS} if manifest.publish_grams else set())
        if apart
        else set()
    )
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(SiteWriter(site_dir))
        data = (
            stack.enter_context(SiteWriter(manifest.data_folder))
            if manifest.data_folder is not None
            else writer
        )
        with times.timed("files"):
            for name, results in gathered.results.items():
                # The Grams are in every run's folder; they are published only when asked for.
                skip = {GRAMS} | data_files if apart or not manifest.publish_grams else set()
                writer.copy_tree(
                    results.folder,
                    run_dir(name),
                    skip=skip,
                    shareable=shared_between_runs,
                    digests=results.figures.digests,
                )
                if apart:
                    data.copy_tree(results.folder, run_dir(name), keep=data_files)
                data.write(in_run(name, RECORD), record_files[name])
        downloads = []
        with times.timed("archive"):
            if records and manifest.publish_archive:
                archived = [
                    ArchivedRun(name, results.folder, record_files[name])
                    for name, results in gathered.results.items()
                ]
                downloads = volumes(archived, manifest.publish_grams, caches.archives(), data.path)
                for volume in downloads:
                    if volume.new:
                        to_keep.append((data_dir / volume.site_path, volume.kept))
                    else:
                        data.link(volume.site_path, volume.file)
        with times.timed("comparisons"):
            figures = _distance_figures(comparisons, caches.distances(), writer, draw_distances)
            to_keep += [(site_dir / path, kept) for path, kept in figures]
        with times.timed("filters"):
            made = _filter_files(atlas, caches.examples(), writer, draw_examples)
            to_keep += [(site_dir / path, kept) for path, kept in made]
            if manifest.visualisation.filters != "none":
                record = _filters_record(manifest, atlas)
                writer.write(FILTERS_RECORD, json.dumps(record, indent=1))
        with times.timed("pages"):
            for site_path, source in renderer.static_files():
                writer.write(site_path, source.read_bytes())
            pages = build_pages(
                manifest,
                records,
                gathered.failed,
                comparisons,
                downloads,
                _data_base(manifest, site_dir),
                atlas,
            )
            pages.append(not_found_page(manifest))
            rendered = _RenderedPages(renderer, writer.aliases, base_url, caches.pages())
            for page in pages:
                to_keep += [(site_dir / path, kept) for path, kept in rendered.write(page, writer)]
            writer.write(NO_JEKYLL, "")
            if base_url and base_url.startswith(
                ("http://", "https://")
            ):  # a sitemap needs absolute URLs
                writer.write(
                    SITEMAP,
                    sitemap(base_url, [page.path for page in pages if page.path != NOT_FOUND]),
                )
        with times.timed("commit"):
            weights = _weigh(manifest, writer)
            before_commit()
            # Both prepared before either is swapped in: a full disk leaves both as they were.
            for prepared in (data, writer) if apart else (writer,):
                prepared.prepare()
            if apart:
                data.swap()
            writer.swap()
    if caches.root is not None:
        with times.timed("commit"):
            keep_comparisons(comparisons, caches.distances())
            for written, kept in to_keep:
                _keep_file(written, kept)
    return Published(len(pages), weights, sum(weights.values()))


def _data_base(manifest: Manifest, site_dir: Path) -> str | None:
    """Where the pages link the data files when they are not in the site: the manifest's
    ``data.url``, or the data folder's path from the site's root."""
    if manifest.data_folder is None:
        return None
    return (
        manifest.data_url or Path(os.path.relpath(manifest.data_folder, site_dir)).as_posix() + "/"
    )


def _weigh(manifest: Manifest, writer: SiteWriter) -> dict[str, int]:
    """What the staged site weighs, by kind; a warning, with the settings that would help, when
    it nears GitHub Pages' limit."""
    assert writer.staging is not None
    content_layers = {run_dir(run.name): run.params.content_layer for run in manifest.runs}
    weights, beyond_content = weigh(writer.staging, content_layers)
    site_bytes = sum(weights.values())
    if site_bytes > PAGES_WARNING_BYTES:
        log.warning(
            "the site weighs %.0f MB (%s); GitHub Pages publishes up to %.0f MB. In the manifest: "
            "%s",
            site_bytes / 1e6,
            describe_weights(weights),
            LIMIT_BYTES / 1e6,
            "; ".join(advice(weights, beyond_content)),
        )
    return dict(weights)


@contextlib.contextmanager
def data_folder_lock(manifest: Manifest, site_dir: Path) -> Iterator[None]:
    """The data folder's own lock, when the data go apart from the site (not inside it)."""
    folder = manifest.data_folder
    if folder is None:
        yield
        return
    if folder == site_dir or folder.is_relative_to(site_dir) or site_dir.is_relative_to(folder):
        raise BuildError(
            f"data.folder {folder} and the site folder {site_dir} must be apart, neither inside "
            "the other"
        )
    with site_lock(folder):
        yield


def _keep_file(source: Path, kept: Path) -> None:
    """Keep a file of the new site in the cache (a hard link where possible); a cache that
    cannot take it only costs the next build the time to make it again."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f".{kept.name}.partial")
        try:
            os.link(source, partial)
        except OSError:
            shutil.copy2(source, partial)
        partial.replace(kept)
    except OSError as error:
        log.info("could not keep %s in the cache: %s", kept.name, error)


class _RenderedPages:
    """Pages rendered once and kept: a page whose template files, context, links to shared files
    and base URL are those of a page rendered before is taken from the cache (a rebuild of a
    large study renders only the pages that changed; rendering is most of its time)."""

    def __init__(
        self, renderer: Renderer, aliases: dict[str, str], base_url: str | None, keep_in: Path
    ):
        self.renderer, self.aliases, self.base_url, self.keep_in = (
            renderer,
            aliases,
            base_url,
            keep_in,
        )
        self.common = json.dumps([renderer.digest(), sorted(aliases.items()), base_url])

    def write(self, page: Page, writer: SiteWriter) -> list[tuple[str, Path]]:
        """Put ``page`` into the site; returns what to keep once the site is in place."""
        payload = json.dumps(
            [self.common, page.template, page.path, page.context], sort_keys=True, default=str
        )
        kept = self.keep_in / f"{hashlib.sha256(payload.encode()).hexdigest()}.html"
        if kept.is_file():
            writer.link(page.path, kept)
            return []
        writer.write(
            page.path,
            self.renderer.render(
                page.template, page.path, page.context, self.aliases, self.base_url
            ),
        )
        return [(page.path, kept)]


def _filter_files(
    atlas: FilterAtlas, keep_in: Path, writer: SiteWriter, draw: ExampleCrops
) -> list[tuple[str, Path]]:
    """Each filter page's visualisation (linked from where it is kept) and example crops (linked
    from the cache when an earlier build drew the same crop of the same image, else drawn, the
    crops of one image together); returns what to keep once the site is in place."""
    to_keep = []
    to_draw: dict[Path, list[ExampleBoxes]] = {}
    names = atlas.network_names
    for key, entry in atlas.entries.items():
        name = names.get(key.network)
        if entry.image is not None:
            writer.link(filter_visualisation(key.layer, key.index, name), entry.image.path)
        for rank, example in enumerate(entry.examples, start=1):
            site_path = example_path(atlas, key, rank)
            # The image's folder is a cache entry named by everything that made it.
            made_from = [str(example.source), example.crop, example.field, EXAMPLE_SIDE]
            kept = keep_in / f"{fingerprint_digest([*made_from, EXAMPLES_VERSION])}.webp"
            if kept.is_file():
                writer.link(site_path, kept)
                continue
            crops = to_draw.setdefault(example.source, [])
            crops.append((example.crop, example.field, writer.path(site_path)))
            to_keep.append((site_path, kept))
    for source, crops in to_draw.items():
        draw(source, crops, EXAMPLE_SIDE)
    return to_keep


def _filters_record(manifest: Manifest, atlas: FilterAtlas) -> dict:
    """``filters/filters.json``: every filter with a page, its visualisation and examples."""
    options = manifest.visualisation
    return {
        "feature_visualisation": {
            "filters": options.filters,
            "size": options.size,
            "steps": options.steps,
            "examples": options.examples,
        },
        "filters": [
            {
                "network": {
                    "weights": manifest.weights_as_written(key.network.weights),
                    "activation": key.network.activation,
                },
                "layer": key.layer,
                "filter": key.index,
                "page": filter_page(key.layer, key.index, atlas.network_names.get(key.network)),
                "visualisation": None
                if entry.image is None
                else {
                    "mean_activation": entry.image.activation,
                    **entry.image.settings.as_dict(),
                    "device": entry.image.device,
                    "seconds": round(entry.image.seconds, 3),
                },
                "examples": [
                    {
                        "run": example.run,
                        "role": example.role,
                        "activation": example.activation,
                        "crop": list(example.crop),
                        "receptive_field": list(example.field),
                    }
                    for example in entry.examples
                ],
                "top_pairs": [
                    {"run": seen.run, "rank": seen.rank, "partner": seen.partner, "g": seen.value}
                    for seen in entry.appearances
                ],
            }
            for key, entry in atlas.entries.items()
        ],
    }


def _distance_figures(
    comparisons: dict[str, StyleComparison], keep_in: Path, writer: SiteWriter, draw: DistanceFigure
) -> list[tuple[str, Path]]:
    """The clustered distance figure of each layer whose page shows one (a study of more style
    images than a table can show): linked from the cache for these styles and distances, or
    drawn; returns what to keep once the site is in place."""
    to_keep = []
    for layer, comparison in comparisons.items():
        if distances_as_table(comparison):
            continue
        site_path = distances_figure(layer)
        # Drawn by the figures' code: a new version of it draws them again.
        kept = (
            keep_in
            / f"{layer}-{comparison_digest(comparison)}-figures{STAGE_VERSIONS['figures']}.webp"
        )
        if kept.is_file():
            writer.link(site_path, kept)
            continue
        draw(comparison, writer.path(site_path))
        to_keep.append((site_path, kept))
    return to_keep
