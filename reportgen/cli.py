"""The command line: ``reportgen build``, ``serve``, ``check`` and ``clean``.  The only module
that prints or exits."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reportgen import __version__
from reportgen.errors import ReportgenError

if TYPE_CHECKING:  # the command line imports the build only when it runs one (--help is fast)
    from multiprocessing.connection import Connection

    from click._termui_impl import ProgressBar

    from reportgen.api import Study
    from reportgen.manifest import RunSpec

MANIFEST = click.Path(path_type=Path, dir_okay=False)
Decorated = TypeVar("Decorated", bound=Callable[..., Any])


class TerminalProgress:
    """A line per run as it starts and ends; the transfer's steps as a bar on a terminal, when
    the build's own process runs them."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.interactive = sys.stderr.isatty() and not quiet
        self._bar: ProgressBar[int] | None = None
        self._finished = 0
        self._count = 0

    def run_started(self, run: RunSpec, position: int, count: int, work: str) -> None:
        self._count = count
        self._close_bar()
        if not self.quiet:
            click.echo(
                f"[{position + 1}/{count}] {run.name}: {self._describe(run, work)}", err=True
            )

    @staticmethod
    def _describe(run: RunSpec, work: str) -> str:
        if work == "cached":
            return "from cache"
        if work == "analysis":
            return "analysing (transfer from cache)"
        if work == "figures":
            return "drawing figures (transfer and analysis from cache)"
        p = run.params
        scales = (
            f", coarse to fine from {p.coarse_to_fine} px" if 0 < p.coarse_to_fine < p.size else ""
        )
        return f"computing ({p.steps} steps{' a scale' if scales else ''}, {p.size} px{scales})"

    def phase(self, run: RunSpec, phase: str, done: int, total: int) -> None:
        if not self.interactive or phase != "transfer":
            return
        if self._bar is None:
            bar: ProgressBar[int] = click.progressbar(
                length=total, label=f"  {run.name}", file=sys.stderr, show_pos=True, show_eta=True
            )
            self._bar = bar.__enter__()
        self._bar.update(done - self._bar.pos)
        if done >= total:
            self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def run_finished(self, run: RunSpec, work: str, seconds: float, error: str | None) -> None:
        # Runs finish out of order (on several devices, a cluster, figure processes): the count
        # of finished runs is the build's progress.
        self._finished += 1
        self._close_bar()
        progress = f"[{self._finished}/{self._count} finished]"
        if error:
            click.echo(f"  {run.name}: FAILED: {error} {progress}", err=True)
        elif work != "cached" and not self.quiet:
            click.echo(f"  {run.name}: done in {seconds:.1f} s {progress}", err=True)

    def visualisations(self, filters: int, layers: int, estimate: float) -> None:
        self._close_bar()
        if not self.quiet:
            click.echo(
                f"feature visualisations: {filters} filter{'s' if filters != 1 else ''} of "
                f"{layers} layer{'s' if layers != 1 else ''} to compute, about "
                f"{_human_seconds(estimate)} (once: they are kept for every study)",
                err=True,
            )

    def visualised(self, done: int, total: int) -> None:
        if not self.quiet:
            click.echo(f"  visualised {done}/{total} filters", err=True)


def _human_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(size)


def _configure_logging(verbose: bool) -> None:
    """Log lines on stderr; details only when asked for (the child of a build on Ray too)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="reportgen")
@click.option(
    "-v", "--verbose", is_flag=True, help="Log details (image conversions, cache decisions)."
)
def main(verbose: bool) -> None:
    """Neural style transfer studies as static HTML reports.

    Reads a YAML manifest of (content, style) image pairs, runs Gatys et al.'s style transfer on
    VGG19 for each, analyses the content and style representations layer by layer and writes a
    static site with one page per pair and per layer.
    """
    _configure_logging(verbose)


def _shared_options(command: Decorated) -> Decorated:
    """The options ``build`` and ``serve`` share."""
    options = [
        click.option(
            "-d",
            "--site-dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Where to write the site (default: ./site).",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto (every GPU, else the CPU), cpu, cuda (every GPU), cuda:N, or a list: "
            "cuda:0,cuda:2. One worker process per GPU.",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(min=0),
            help="Processes drawing figures beside the transfers (default: the cores not feeding "
            "a GPU; 0: none, draw in the build's process).",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this machine's devices; ray: transfers and figures as tasks on a Ray "
            "cluster (pip install 'reportgen[ray]').",
        ),
        click.option(
            "--ray-address",
            help="The Ray cluster to use (auto: the one `ray start` runs here; default: start a "
            "local one for the build).",
        ),
        click.option(
            "--ray-gpus",
            type=float,
            default=1.0,
            show_default=True,
            help="GPUs per Ray device worker; 0.5 lets two share a GPU (small runs).",
        ),
        click.option(
            "--base-url",
            help="Where the site will be published (https://user.github.io/repo/ or /repo/); used "
            "for 404.html, canonical links and sitemap.xml.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            help="Where finished results are kept (default: $REPORTGEN_CACHE_DIR or "
            "~/.cache/reportgen).",
        ),
        click.option("--no-cache", is_flag=True, help="Recompute every pair and keep nothing."),
        click.option(
            "--keep-going",
            is_flag=True,
            help="Build the other pairs when one fails; the failed ones are listed on the index "
            "page.",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Fail the build on any warning (the previous site stays).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Print only the summary and errors."),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            help="Log details (image conversions, cache decisions).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run_build(manifest: Path, options: dict[str, Any]) -> bool:
    """One build with the shared options; prints its summary; True when a pair failed."""
    # What can be refused at once is refused here (before a process is started for it on Ray),
    # in the command line's words.
    _check_executor(options)
    if options["executor"] == "ray":
        return _build_in_a_process_of_its_own(manifest, options)
    return _build_here(manifest, options)


def _study(manifest: Path, options: dict[str, Any]) -> Study:
    """The study of ``manifest`` with the command line's device and cache."""
    from reportgen.api import Study

    return Study(
        manifest,
        device=options["device"],
        cache_dir=options["cache_dir"],
        use_cache=not options["no_cache"],
        progress=False,
    )


def _check_executor(options: dict[str, Any]) -> None:
    from reportgen.execute import ExecutorChoice

    ExecutorChoice(
        options["executor"], options["device"], options["jobs"], ray_gpus=options["ray_gpus"]
    ).check()


def _build_here(manifest: Path, options: dict[str, Any]) -> bool:
    if options["verbose"]:
        logging.getLogger().setLevel(logging.INFO)
    summary = _study(manifest, options).build(
        options["site_dir"] or Path("site"),
        strict=options["strict"],
        keep_going=options["keep_going"],
        base_url=options["base_url"],
        jobs=options["jobs"],
        executor=options["executor"],
        ray_address=options["ray_address"],
        ray_gpus=options["ray_gpus"],
        progress=TerminalProgress(options["quiet"]),
    )
    stages = summary.stages_computed
    made = (
        f" ({stages['transfer']} transfers, {stages['analysis']} analyses, {stages['figures']} "
        "figure sets)"
        if summary.computed
        else ""
    )
    if summary.visualised:
        made += f", {summary.visualised} filters visualised"
    parts = [f"{len(summary.computed)} computed{made}", f"{len(summary.cached)} from cache"]
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    click.echo(
        f"built {summary.site_dir}: {', '.join(parts)}; {summary.pages} pages, "
        f"{_human_bytes(summary.site_bytes)}, {summary.seconds:.1f} s"
    )
    return bool(summary.failed)


# A process that is Ray's driver is ended by Ray, with exit status 1 and nothing said, when the
# raylet of its node dies.  So a build on Ray runs in a process of its own, and this one, which
# Ray does not know, says what happened.
RAY_ENDED_THE_BUILD = (
    "Ray ended the build's process (exit status {status}), as it does when the Ray node the build "
    "runs on stops: its raylet was killed or ran out of memory, or the node was lost; the previous "
    "site is unchanged"
)


def _build_in_a_process_of_its_own(manifest: Path, options: dict[str, Any]) -> bool:
    """:func:`_build_here` in a child process (spawned: no Ray, torch or thread state shared),
    which prints the progress and summary itself and sends back how the build ended."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_build_as_child, args=(manifest, options, sender), name="reportgen build"
    )
    child.start()
    sender.close()
    while True:
        try:
            child.join()
            break
        except KeyboardInterrupt:
            continue  # Ctrl-C reached the child too: it stops the build and says so
    try:
        ended = receiver.recv()
    except EOFError:  # it ended without a word
        ended = None
    if ended is None:
        status = child.exitcode
        if status is not None and status < 0:
            raise ReportgenError(
                f"the build's process was killed (signal {-status}); the previous site is unchanged"
            )
        raise ReportgenError(RAY_ENDED_THE_BUILD.format(status=status))
    outcome, detail = ended
    if outcome == "interrupted":
        raise KeyboardInterrupt
    if outcome == "error":
        raise detail
    return bool(detail)


def _build_as_child(manifest: Path, options: dict[str, Any], parent: Connection) -> None:
    """The child's side of :func:`_build_in_a_process_of_its_own`."""
    _configure_logging(options["verbose"])
    try:
        ended: tuple[str, object] = ("finished", _build_here(manifest, options))
    except ReportgenError as error:
        ended = ("error", error)  # pickled: the parent raises it, with its exit status
    except KeyboardInterrupt:
        ended = ("interrupted", None)
    parent.send(ended)
    parent.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # as run() does: no interpreter teardown after a build


@main.command()
@click.argument("manifest", type=MANIFEST)
@_shared_options
def build(manifest: Path, **options: Any) -> None:
    """Build the site for MANIFEST."""
    try:
        failed = _run_build(manifest, options)
    except KeyboardInterrupt:
        click.echo("interrupted: the previous site is unchanged", err=True)
        sys.exit(130)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("manifest", type=MANIFEST)
@_shared_options
@click.option(
    "-a",
    "--dev-addr",
    default="127.0.0.1:8000",
    show_default=True,
    help="Address to serve on (host:port).",
)
def serve(manifest: Path, dev_addr: str, **options: Any) -> None:
    """Build MANIFEST, serve the site on localhost and rebuild when the manifest, an image or a
    template changes (results come from the cache)."""
    from reportgen.serve import serve as run_server

    host, _, port = dev_addr.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{dev_addr!r} is not host:port", param_hint="--dev-addr")
    options["quiet"] = True
    site_dir = (options["site_dir"] or Path("site")).absolute()
    try:
        _run_build(manifest, options)
        run_server(
            manifest,
            site_dir,
            rebuild=lambda: _run_build(manifest, options),
            host=host or "127.0.0.1",
            port=int(port),
            base_url=options["base_url"],
            on_ready=lambda url: click.echo(f"serving {site_dir} at {url} (Ctrl-C to stop)"),
            on_error=lambda message: click.echo(
                f"Error: {message}; still serving the last good site", err=True
            ),
        )
    except KeyboardInterrupt:
        click.echo("stopped")
    except OSError as error:
        raise ReportgenError(f"cannot serve on {dev_addr}: {error.strerror or error}") from None


@main.command()
@click.argument("manifest", type=MANIFEST)
def check(manifest: Path) -> None:
    """Validate MANIFEST and its images without computing anything."""
    from reportgen.manifest import load_manifest

    loaded = load_manifest(manifest)
    click.echo(f"{manifest}: OK, {len(loaded.pairs)} pair{'s' if len(loaded.pairs) != 1 else ''}")


@main.command()
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The cache to empty (default: the one build uses).",
)
def clean(cache_dir: Path | None) -> None:
    """Empty the result cache."""
    from reportgen.stages.cache import clear_cache, default_cache_dir

    root = cache_dir or default_cache_dir()
    count = clear_cache(root)
    click.echo(f"removed {count} cached result{'s' if count != 1 else ''} from {root}")


def run() -> None:
    """The console entry point: :func:`main`, then an immediate exit.

    Tearing the interpreter down after a build (torch's, matplotlib's and pandas' module graphs)
    takes over a second; everything a command writes is closed and renamed into place before it
    returns, so the process skips that teardown once the output streams are flushed.  (Tests call
    :func:`main` itself.)
    """
    try:
        main()
    except SystemExit as done:
        code = done.code
    else:  # pragma: no cover - click's main always exits
        code = 0
    if code is not None and not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
