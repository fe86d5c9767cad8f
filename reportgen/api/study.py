"""A study in Python: a manifest's runs computed on demand and published as a site, on the
stages and the cache that ``reportgen build`` uses (a run computed here is a cache hit for a
build, and the other way round).

:func:`transfer` is a study of one pair given by keywords.  Computing stops after the analyses:
the figures and feature visualisations are a site's, drawn by :meth:`Study.build`.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from reportgen.api.progress import Bars
from reportgen.api.run import Run
from reportgen.build import BuildOptions, BuildSummary
from reportgen.build import build as build_site
from reportgen.errors import ParameterError, ReportgenError, RunNotFound, os_errors_reported
from reportgen.execute import ExecutorChoice, Executors
from reportgen.execute.executors import ExecutorName
from reportgen.execute.local import InProcessDevice
from reportgen.images import keep_as_file
from reportgen.manifest import Manifest, load_manifest
from reportgen.manifest.load import pair_manifest
from reportgen.stages.cache import Caches, default_cache_dir
from reportgen.stages.jobs import FeatureJob
from reportgen.stages.pipeline import BuildProgress, Gatherer, Silent

ImageInput = str | os.PathLike[str] | Image.Image | np.ndarray


class Study:
    """The study of a manifest (``reportgen.Study("manifest.yaml")``): its runs by name, each
    computed the first time it is asked for (or taken from the cache), and its site.

    ``device``: where transfers run, as ``reportgen build --device`` takes it (``auto``: every
    GPU, else the CPU).  ``cache_dir``: where results are kept (default: the build's,
    ``$REPORTGEN_CACHE_DIR`` or ``~/.cache/reportgen``); ``use_cache=False`` keeps nothing
    beyond this object.  ``progress``: tqdm bars while computing.
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        *,
        device: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        progress: bool = True,
    ):
        self._setup(load_manifest(Path(manifest)), device, cache_dir, use_cache, progress)

    @classmethod
    def _of(
        cls,
        manifest: Manifest,
        device: str,
        cache_dir: str | os.PathLike[str] | None,
        use_cache: bool,
        progress: bool,
        caches: Caches,
    ) -> Study:
        study = cls.__new__(cls)
        study._setup(manifest, device, cache_dir, use_cache, progress, caches)
        return study

    def _setup(
        self,
        manifest: Manifest,
        device: str,
        cache_dir: str | os.PathLike[str] | None,
        use_cache: bool,
        progress: bool,
        caches: Caches | None = None,
    ) -> None:
        device = str(device)  # torch.device("cuda") is welcome too
        try:
            ExecutorChoice(device=device).check()
        except ReportgenError as error:  # said as the command line's --device: say device=
            raise ParameterError([error.message.replace("--device ", "device=", 1)]) from None
        self.manifest = manifest
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache = use_cache
        self.progress = progress
        self.site: Path | None = None  # the site last built from this study
        self._specs = {spec.name: spec for spec in manifest.runs}
        self._runs: dict[str, Run] = {}
        self._caches = caches or Caches(self.cache_dir if use_cache else None)
        # Without a cache, the results live in temporary folders for as long as the study does.
        weakref.finalize(self, self._caches.close)
        self._feature_device: InProcessDevice | None = None

    # ---- its runs -----------------------------------------------------------------------

    @property
    def title(self) -> str:
        """The manifest's ``title``."""
        return self.manifest.title

    @property
    def names(self) -> list[str]:
        """Every run's name (``pair`` or ``pair/variant``), in manifest order."""
        return list(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        """Every run's name, as a mapping's keys (``compute()`` gives the runs, computed)."""
        return iter(self._specs)

    def __getitem__(self, name: str) -> Run:
        """The run ``name`` (``pair`` or ``pair/variant``), computed if it is not yet."""
        return self.compute([name])[0]

    def compute(self, names: Iterable[str] | None = None) -> list[Run]:
        """The runs ``names`` (default: all), computing those the cache lacks, together."""
        wanted = self.names if names is None else [names] if isinstance(names, str) else list(names)
        for name in wanted:
            if name not in self._specs:
                raise RunNotFound(
                    f"no run {name!r} in {self.manifest.path.name} (its runs: "
                    f"{_listed(self.names)})"
                )
        missing = [name for name in wanted if name not in self._runs]
        if missing:
            self._compute(missing)
        return [self._runs[name] for name in wanted]

    def _compute(self, names: list[str]) -> None:
        manifest = self.manifest.only(names)
        listener = Bars() if self.progress else Silent()
        try:
            with (
                os_errors_reported(),
                Executors(ExecutorChoice(device=self.device), manifest, listener) as executors,
            ):
                gatherer = Gatherer(
                    manifest,
                    self._caches,
                    executors.devices,
                    executors.figures,
                    listener,
                    keep_going=False,
                    draw=False,
                )
                gathered = gatherer.gather()
        finally:
            if isinstance(listener, Bars):
                listener.close()
        for name, stages in gathered.analysed.items():
            self._runs[name] = Run(self, self._specs[name], stages)

    def _feature_maps(self, job: FeatureJob) -> dict[str, np.ndarray]:
        """A forward pass in this process, on the study's first device."""
        if self._feature_device is None:
            self._feature_device = InProcessDevice(self.device.split(",")[0].strip())
        maps = self._feature_device.submit(job).result()
        assert isinstance(maps, dict)
        return maps

    # ---- its site -----------------------------------------------------------------------

    def build(
        self,
        site_dir: str | os.PathLike[str] = "site",
        *,
        strict: bool = False,
        keep_going: bool = False,
        base_url: str | None = None,
        jobs: int | None = None,
        executor: ExecutorName = "local",
        ray_address: str | None = None,
        ray_gpus: float = 1.0,
        progress: BuildProgress | None = None,
    ) -> BuildSummary:
        """Write the study's site into ``site_dir``, as ``reportgen build`` does (its options
        are these keywords); returns what the build did.  ``progress``: who hears of each run
        (default: tqdm bars, if the study shows progress)."""
        options = BuildOptions(
            site_dir=Path(site_dir),
            executors=ExecutorChoice(executor, self.device, jobs, ray_address, ray_gpus),
            cache_dir=self.cache_dir,
            use_cache=self.use_cache,
            keep_going=keep_going,
            strict=strict,
            base_url=base_url,
        )
        bars = Bars() if progress is None and self.progress else None
        try:
            summary = build_site(self.manifest, options, progress or bars or Silent())
        finally:
            if bars is not None:
                bars.close()
        self.site = summary.site_dir
        return summary

    def _repr_html_(self) -> str:
        from reportgen.api.display import study_html

        return study_html(self)

    def __repr__(self) -> str:
        return f"<reportgen.Study {self.title!r}: {len(self)} runs from {self.manifest.path}>"


def transfer(
    content: ImageInput,
    style: ImageInput | Sequence[ImageInput] | None = None,
    *,
    regions: Sequence[tuple[ImageInput, ImageInput]] | None = None,
    device: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    progress: bool = True,
    **parameters: Any,
) -> Run:
    """Style transfer of one pair, analysed: ``content`` and ``style`` are image files (or
    PIL images, or (H, W, 3) uint8 arrays); ``style`` may be a list of them to blend
    (``style_blend=[0.7, 0.3]``), or ``regions`` a list of (mask, style) images in its place.
    ``parameters`` are any of the manifest's (``size=256``, ``steps=100``,
    ``style_layers={"conv1_1": 1.0}``, ``preset="seed"``...), checked as a manifest's are.
    The other keywords are :class:`Study`'s.

    The run is kept in the cache under the same key a manifest listing this pair with these
    parameters gives it: a later ``reportgen build`` reuses it.
    """
    label = "reportgen.transfer()"
    caches = Caches(
        (Path(cache_dir) if cache_dir is not None else default_cache_dir()) if use_cache else None
    )
    try:
        with os_errors_reported():
            content_file = _as_file(content, "content", caches, label)
            style_files: str | list[str] | None = None
            if isinstance(style, (list, tuple)):
                style_files = [_as_file(image, "style", caches, label) for image in style]
            elif style is not None:  # one image (a str is a Sequence too)
                style_files = _as_file(cast(ImageInput, style), "style", caches, label)
            region_files = None
            if regions is not None:
                region_files = [
                    {
                        "mask": _as_file(mask, "mask", caches, label),
                        "style": _as_file(image, "style", caches, label),
                    }
                    for mask, image in regions
                ]
        manifest = pair_manifest(content_file, style_files, parameters, label, regions=region_files)
    except BaseException:
        caches.close()
        raise
    study = Study._of(manifest, device, cache_dir, use_cache, progress, caches)
    return study.compute()[0]


def _as_file(image: ImageInput, role: str, caches: Caches, label: str) -> str:
    """The path of an image given as a file, or of the PNG an image given as pixels is kept as
    (in the cache, or for the study's lifetime without one), so that a run can name it and a
    cache key can be made of its bytes."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, np.ndarray) and role == "mask" and image.ndim == 2:
        if image.dtype == np.bool_:
            image = image.astype(np.uint8) * 255
        if image.dtype != np.uint8:
            raise ParameterError(
                [f"{label} mask: a mask array must be (H, W) uint8 or bool, not {image.dtype}"]
            )
        image = Image.fromarray(image, "L")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ParameterError(
                [
                    f"{label} {role}: an array must be (H, W, 3) or (H, W, 4) uint8, not "
                    f"{image.shape} {image.dtype}"
                ]
            )
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise ParameterError(
            [
                f"{label} {role}: must be an image file's path, a PIL image or an array, not "
                f"{type(image).__name__}"
            ]
        )
    if 0 in image.size:
        raise ParameterError(
            [f"{label} {role}: the image is empty ({image.size[0]}×{image.size[1]})"]
        )
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise ParameterError(
            [
                f"{label} {role}: a {image.mode} image (more than 8 bits a channel) would lose "
                "its range; convert it to 8-bit RGB as you want it seen"
            ]
        )
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        image = image.convert("RGB")  # CMYK, YCbCr, HSV...: PNG cannot hold them as they are
    return str(keep_as_file(image, caches.inputs(), role))


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
