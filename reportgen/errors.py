"""Errors a user can act on.  The CLI prints their message and exits non-zero; no traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click


class ReportgenError(click.ClickException):
    """Base class: something about the user's input or environment, told in one message."""

    exit_code = 1


class ManifestError(ReportgenError):
    """The manifest is invalid.  ``problems`` holds every problem found, each already located."""

    exit_code = 2
    invalid = "manifest"  # what the message says is invalid

    def __init__(self, problems: list[str]):
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid {self.invalid} ({count}):\n  " + "\n  ".join(problems))

    def __reduce__(self) -> tuple[type[ManifestError], tuple[list[str]]]:
        # Made again from its problems in another process (a build on Ray runs in its own).
        return (type(self), (self.problems,))


class ParameterError(ManifestError):
    """The parameters of a call of the Python API are invalid (as a manifest's would be: the
    same checks, the same messages, located by keyword)."""

    invalid = "parameters"


class RunNotFound(ReportgenError, KeyError):
    """A study has no run of that name (``study["name"]``)."""

    def __str__(self) -> str:  # KeyError's own would quote the message
        return self.message


class UsageError(ReportgenError, ValueError):
    """A value the Python API cannot take: a layer a run did not analyse, an unknown role."""


class ImageError(ReportgenError):
    """An input image cannot be used; the message names the file."""


class WeightsError(ReportgenError):
    """The chosen VGG19 weights cannot be loaded."""


class TransferError(ReportgenError):
    """The optimisation of one pair failed (NaN loss, out of memory)."""


class BuildError(ReportgenError):
    """The site cannot be written (the folder is locked, or not ours to replace)."""


@contextlib.contextmanager
def os_errors_reported(
    consequence: str = "", error_type: type[ReportgenError] = ReportgenError
) -> Iterator[None]:
    """A file system error (a path that is a file, a full disk, an image moved away) becomes a
    one-line ``error_type`` naming the file, followed by ``consequence`` (``"; the previous
    site is unchanged"``)."""
    try:
        yield
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise error_type(f"{where}{error.strerror or error}{consequence}") from None
