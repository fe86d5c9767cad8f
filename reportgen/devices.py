"""The ``--device`` grammar, without torch: what a build's device choice may say.

Whether the devices it names are present is asked of torch (:mod:`reportgen.ml.runtime`) when
the first run needs them; a choice that names no device is refused here, before anything starts.
"""

from __future__ import annotations

import re

from reportgen.errors import ReportgenError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, or a comma-separated list such as cuda:0,cuda:2"
_DEVICE = r"(cpu|cuda(:\d+)?)"
_DEVICE_CHOICE = re.compile(rf"auto|{_DEVICE}(,{_DEVICE})*")


def check_device_choice(choice: str) -> None:
    """Refuse a ``--device`` value that names no device."""
    if not _DEVICE_CHOICE.fullmatch(choice.replace(" ", "")):
        raise ReportgenError(f"--device {choice!r} is not a device (allowed: {DEVICE_CHOICES})")
