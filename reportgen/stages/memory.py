"""How much memory a run needs at its peak, worked out before anything is allocated
(torch-free: the build can plan with it before any network is loaded).

The estimate walks VGG19 layer by layer up to the deepest layer a run uses and adds up what is
alive at each of a run's three peaks (``B`` images optimised together, ``P`` = H·W positions of
the content image, ``Q`` those of a style image):

* **the targets** (no gradients, float32, one image at a time): the content image's and each
  style image's feature maps at the tapped layers, and the largest input-plus-output pair of one
  layer while the pass runs;
* **a step** of the optimisation: what autograd keeps for the backward pass of each image (each
  ReLU's output, each max-pool's output and its int64 indices, the network input; at bfloat16
  the ReLUs' outputs take 2 bytes, and so do the Grams' inputs), the
  gradients of every tapped layer (the Grams' backward runs first, so they are all alive before
  the network's backward frees anything), and one gradient of the largest layer in flight;
* **the analysis** of the result (no gradients, float32): the tapped maps of the content, style
  and result images, a contiguous copy of one layer's maps per image, and two temporaries of
  that size while one image's maps are scaled into tiles.

Beside each peak stay the images and their gradients, the content targets, and the optimiser's
state: L-BFGS keeps ``min(steps - 1, 50)`` pairs of image-sized vectors (at 2048 px that is
several gigabytes, as much as the network), Adam two moments.  Coarse to fine peaks at the
last scale (each scale's optimiser is dropped before the next one's fills up).

The terms are counted, not fitted; ``benchmarks/memory.py`` measures them against real peaks
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from reportgen.images import MAX_SIDE, MIN_SIDE, target_size
from reportgen.layers import CHANNELS, CONV_INDEX, Activation, module_index
from reportgen.manifest import Params

FLOAT32 = 4
BFLOAT16 = 2
INDEX = 8  # max-pool indices are int64
LBFGS_HISTORY = 50  # pairs (s, y) that reportgen.ml.optim.BatchLBFGS keeps
# Image-sized float32 vectors an L-BFGS step holds besides its history: the point and gradient
# it accepted, the current point's copy and gradient, and the direction's working vectors.
LBFGS_WORKING = 8
ADAM_MOMENTS = 2
# Float32 temporaries of one layer's maps while they become 8-bit tiles: numpy's chained
# arithmetic (``((maps - low) / span * 255).round()``) holds two at a time, and the content
# layer's difference a third.
TILE_TEMPORARIES = 3
# Kept free on top of the estimate: the estimate counts tensors, and a process also holds
# allocator slack, oneDNN's scratch buffers and what a figure drawn beside it needs.  Measured
# peaks came out from 6% under to 13% over the estimate at 128 to 2048 px (benchmarks/RESULTS.md);
# twice the worst of that, so that a run admitted does not end in the kernel's OOM killer.
SAFETY_MARGIN = 0.25


@dataclass(frozen=True)
class RunShape:
    """What of a run decides its memory: sizes, network, optimiser, precision, batch."""

    content: tuple[int, int]  # (width, height) of the content image as fed, at the last scale
    styles: tuple[tuple[int, int], ...]  # (width, height) of each style image as fed
    layers: tuple[str, ...]  # every layer the loss taps (content and style layers)
    analysed_layers: tuple[str, ...]  # the layers the analysis passes through
    activation: Activation
    precision: str  # "float32" | "bfloat16", as resolved on the device
    optimizer: str  # "lbfgs" | "adam"
    steps: int  # per scale
    batch: int = 1  # images optimised together


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes alive at each of a run's peaks; :attr:`peak` is the largest."""

    targets: int  # computing the content and style targets (no gradients)
    step: int  # one optimisation step, forward and backward, of the whole batch
    analysis: int  # the analysis of one result
    kept: int  # alive throughout the transfer: images, their gradients, the content targets
    optimiser: int  # the optimiser's state, from the first step on

    @property
    def peak(self) -> int:
        return max(self.targets + self.kept, self.step + self.kept + self.optimiser, self.analysis)


@dataclass(frozen=True)
class _Module:
    kind: str  # "conv" | "relu" | "pool"
    channels: int
    height: int  # of the module's output
    width: int

    @property
    def elements(self) -> int:
        return self.channels * self.height * self.width


def _walk(width: int, height: int, depth: int) -> list[_Module]:
    """The first ``depth`` modules of VGG19's features on a (height, width) image, with their
    output shapes (the max-pools halve, rounding down, as ``MaxPool2d(2, 2)`` does)."""
    conv_at = {index: name for name, index in CONV_INDEX.items()}
    modules: list[_Module] = []
    channels = 3
    for index in range(depth):
        if index in conv_at:
            channels = CHANNELS[conv_at[index]]
            modules.append(_Module("conv", channels, height, width))
        elif index - 1 in conv_at:
            modules.append(_Module("relu", channels, height, width))
        else:
            height, width = height // 2, width // 2
            modules.append(_Module("pool", channels, height, width))
    return modules


def _taps(layers: tuple[str, ...], activation: Activation) -> set[int]:
    return {module_index(layer, activation) for layer in layers}


def _tapped_bytes(size: tuple[int, int], taps: set[int]) -> int:
    """float32 maps of the tapped modules of an image of ``size`` (width, height)."""
    modules = _walk(*size, max(taps) + 1)
    return sum(modules[index].elements * FLOAT32 for index in taps)


def _forward_transient(size: tuple[int, int], depth: int) -> int:
    """The largest input plus output of one module in a pass without gradients, float32."""
    previous = 3 * size[0] * size[1]
    largest = 0
    for module in _walk(*size, depth):
        largest = max(largest, (previous + module.elements) * FLOAT32)
        previous = module.elements
    return largest


def _step_bytes(size: tuple[int, int], taps: set[int], activation_bytes: int) -> int:
    """What one image's forward and backward pass keeps at its peak: see the module docstring."""
    modules = _walk(*size, max(taps) + 1)
    positions = size[0] * size[1]
    # The network input: the normalised image (float32) and its channels-last copy, at the
    # network's precision.
    saved = 3 * positions * (FLOAT32 + activation_bytes)
    for index, module in enumerate(modules):
        last = index == len(modules) - 1
        if module.kind == "relu" or index in taps or last:
            saved += module.elements * activation_bytes  # the next module's saved input
        if module.kind == "pool":
            saved += module.elements * INDEX
    tap_gradients = sum(modules[index].elements * FLOAT32 for index in taps)
    in_flight = max(module.elements for module in modules) * FLOAT32
    return saved + tap_gradients + in_flight


def estimate(shape: RunShape) -> MemoryEstimate:
    """Peak bytes of a run of ``shape``: see the module docstring."""
    taps = _taps(shape.layers, shape.activation)
    depth = max(taps) + 1
    activation_bytes = BFLOAT16 if shape.precision == "bfloat16" else FLOAT32
    positions = shape.content[0] * shape.content[1]
    image = 3 * positions * FLOAT32
    deepest_content = _tapped_bytes(shape.content, {max(taps)})  # the content target, about
    if shape.optimizer == "lbfgs":
        optimiser = (2 * min(max(shape.steps - 1, 0), LBFGS_HISTORY) + LBFGS_WORKING) * image
    else:
        optimiser = ADAM_MOMENTS * image
    style_images = sum(3 * w * h * FLOAT32 for w, h in shape.styles)
    # Per image: the image, its gradient, the content image (0..255 and 0..1), the style images
    # (likewise), the content target, and the optimiser's state.
    kept = shape.batch * (4 * image + 2 * style_images + deepest_content)
    every_size = [shape.content, *shape.styles]
    targets = (
        _tapped_bytes(shape.content, taps)
        + sum(_tapped_bytes(style, taps) for style in shape.styles)
        + max(_forward_transient(size, depth) for size in every_size)
    )
    step = shape.batch * _step_bytes(shape.content, taps, activation_bytes)
    analysed = _taps(shape.analysed_layers, shape.activation)
    largest_maps = [_largest_map(size, analysed) for size in (shape.content, *shape.styles)]
    analysis = (
        2 * _tapped_bytes(shape.content, analysed)  # the content image's and the result's
        + sum(_tapped_bytes(style, analysed) for style in shape.styles)
        # At the largest layer: a contiguous copy of its maps per image, and the temporaries of
        # one image's while its maps are scaled into tiles.
        + (largest_maps[0] + sum(largest_maps) + TILE_TEMPORARIES * max(largest_maps)) * FLOAT32
        + _weight_bytes(max(analysed) + 1)  # the forward pass's copy of the kernels
    )
    # The convolution kernels are copied into the layout the backend computes in (oneDNN's
    # blocked layouts; at bfloat16 autocast's cast copies) for the forward pass, and each
    # layer's once more, transposed, while its backward runs.
    weights = _weight_bytes(depth) + _largest_kernel_bytes(depth)
    # At bfloat16 the network's bfloat16 twin (FeatureExtractor.in_bfloat16), made at the first
    # step and kept through the analysis.
    twin = _weight_bytes(depth) // 2 if shape.precision == "bfloat16" else 0
    return MemoryEstimate(
        targets, step + weights + twin, analysis + twin, kept, shape.batch * optimiser
    )


def _largest_map(size: tuple[int, int], taps: set[int]) -> int:
    modules = _walk(*size, max(taps) + 1)
    return max(modules[index].elements for index in taps)


def _largest_kernel_bytes(depth: int) -> int:
    """float32 bytes of the largest convolution kernel of the first ``depth`` modules."""
    largest, channels = 0, 3
    for name, index in CONV_INDEX.items():
        if index < depth:
            largest = max(largest, channels * 9 * CHANNELS[name])
            channels = CHANNELS[name]
    return largest * FLOAT32


def _weight_bytes(depth: int) -> int:
    """float32 bytes of the convolution kernels and biases of the first ``depth`` modules."""
    total = 0
    channels = 3
    for name, index in CONV_INDEX.items():
        if index < depth:
            total += (channels * 9 + 1) * CHANNELS[name]
            channels = CHANNELS[name]
    return total * FLOAT32


def run_shape(
    params: Params,
    content: tuple[int, int],
    styles: tuple[tuple[int, int], ...],
    precision: str,
    batch: int = 1,
) -> RunShape:
    """The shape of a run of ``params`` whose images are fed at ``content`` and ``styles``
    (width, height), at ``precision`` as resolved on its device."""
    return RunShape(
        content,
        styles,
        (params.content_layer, *params.style_layer_weights),
        tuple(params.analysed_layers),
        params.activation,
        precision,
        params.optimizer,
        params.steps,
        batch,
    )


def resized(shape: RunShape, side: int) -> RunShape:
    """``shape`` with the content image's longest side at ``side`` and the style images scaled
    with it (as a run's ``size`` scales them)."""
    width, height = shape.content
    factor = side / max(width, height)
    styles = tuple(target_size(w, h, max(1, round(max(w, h) * factor))) for w, h in shape.styles)
    return dataclasses.replace(shape, content=target_size(width, height, side), styles=styles)


def batched(shape: RunShape, batch: int) -> RunShape:
    """``shape`` with ``batch`` images optimised together."""
    return dataclasses.replace(shape, batch=batch)


def fits(shape: RunShape, available: int) -> bool:
    """Whether a run of ``shape`` fits in ``available`` bytes, with :data:`SAFETY_MARGIN`."""
    return estimate(shape).peak * (1 + SAFETY_MARGIN) <= available


def largest_side(shape: RunShape, available: int) -> int | None:
    """The largest content size (longest side, px) at which a run like ``shape`` fits in
    ``available`` bytes; ``None`` if not even the smallest does."""
    width, height = shape.content
    smallest = math.ceil(MIN_SIDE * max(width, height) / min(width, height))
    if not fits(resized(shape, smallest), available):
        return None
    low, high = smallest, MAX_SIDE  # fits at low; bisect for the last side that does
    if fits(resized(shape, high), available):
        return high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(resized(shape, middle), available) else (low, middle)
    return low


def largest_batch(shape: RunShape, available: int, most: int) -> int:
    """How many runs like ``shape`` (up to ``most``) fit in ``available`` bytes as one batch."""
    count = most
    while count > 1 and not fits(batched(shape, count), available):
        count -= 1
    return count


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"


def host_available() -> int:
    """Bytes this process may still allocate on the host: what the kernel counts as available
    (``MemAvailable``: free memory and the page cache it can drop), or what is left under the
    process's cgroup limit where that is lower (a container's, a batch system's).

    Memory this process freed but its allocator still holds (glibc keeps freed chunks of up to
    32 MB for reuse: after a large run, gigabytes) is handed back to the system first, so that it
    counts as available rather than as used."""
    _trim_heap()
    available = _meminfo_available()
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # v1
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max", or v1's "no limit"
            available = min(available, int(limit) - usage)
        break
    return available


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Not Linux: the physical memory, as the operating system reports it.
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the freed memory the allocator holds to the system
    (nothing elsewhere)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
