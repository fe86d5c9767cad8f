"""Feature visualisation: for each filter, an image optimised to excite it (Olah et al.,
"Feature Visualization", Distill 2017; the recipe of Lucid and Lucent).

Optimising raw pixels for a filter's mean activation gives high-frequency noise that excites
the filter through the network's blind spots.  Two things make the image readable, as in Lucid:

* **the parameterisation**: the image is a spectrum (a real FFT per colour channel) whose
  amplitudes are scaled by 1/frequency, so that every frequency starts with the energy natural
  images have and gradient steps do not favour the finest ones; its three channels are
  decorrelated colours (ImageNet's colour covariance, square-rooted) squashed into 0..1 by a
  sigmoid;
* **transformation robustness**: at every step the image is padded, shifted, scaled and rotated
  at random before the network sees it, so that only patterns that excite the filter wherever
  and however large they appear survive.

Every filter of a batch is optimised at once, each in its own image (a GPU does a layer's
hundreds of filters in one batch).  The objective is the sum over the batch of each image's
filter's mean activation at its layer, under the run's ``activation`` setting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reportgen.layers import module_index
from reportgen.ml.vgg import FeatureExtractor
from reportgen.stages.visualisations import VisualisationSettings

# Square root of ImageNet's colour covariance, by its SVD (the numbers Lucid uses): a step in
# the decorrelated space moves the colours the way natural images vary.
_COLOUR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)
# Lucid's transformations: pad, jitter 8 px, scale by 0.9..1.1, rotate by -10..10 degrees (0
# more often), jitter 4 px.  Pixel amounts are for a 128 px image and scale with the image.
_PAD, _FIRST_JITTER, _SECOND_JITTER = 12, 8, 4
_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
_ANGLES = tuple(range(-10, 11)) + (0,) * 5
_REFERENCE_SIDE = 128
REDIRECTED_SHARE = 0.25  # of the steps, at the start


@dataclass(frozen=True)
class Visualised:
    """What one batch of visualisations made."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB, one per filter, in the order asked
    activations: np.ndarray  # (N,) float32: each filter's mean activation on its own image
    seconds: float


class FourierImage(torch.nn.Module):
    """A batch of images parameterised as decorrelated, 1/f-scaled spectra.

    ``forward()`` returns the (N, 3, S, S) RGB images in 0..1.
    """

    def __init__(self, count: int, side: int, generator: torch.Generator, device: torch.device):
        super().__init__()
        frequencies = torch.sqrt(
            torch.fft.fftfreq(side)[:, None] ** 2 + torch.fft.rfftfreq(side)[None, :] ** 2
        )  # (S, S // 2 + 1), cycles per pixel
        # 1/f, the lowest frequency held at the image's own so that the mean does not explode.
        self.scale: torch.Tensor
        self.register_buffer("scale", (1.0 / frequencies.clamp(min=1.0 / side)).to(device))
        spectrum = 0.01 * torch.randn(count, 3, side, side // 2 + 1, 2, generator=generator)
        self.spectrum = torch.nn.Parameter(spectrum.to(device))
        self.side = side
        correlation = _COLOUR_CORRELATION_SQRT
        self.colours: torch.Tensor
        self.register_buffer(
            "colours", (correlation / correlation.norm(dim=0).max()).to(device)
        )  # (3, 3), its largest column of norm 1

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        # Lucid's 4: keeps the start near grey, where the sigmoid is steepest.
        decorrelated = torch.fft.irfft2(spectrum, s=(self.side, self.side), norm="ortho") / 4.0
        rgb = torch.einsum("nchw,dc->ndhw", decorrelated, self.colours)
        return torch.sigmoid(rgb)


def _transformed(images: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, S, S) -> (N, 3, S', S'): padded with grey, shifted, scaled, rotated and shifted
    again, one draw for the whole batch."""
    unit = side / _REFERENCE_SIDE

    def pick(values: tuple) -> float:
        return values[int(torch.randint(len(values), (1,), generator=generator))]

    def jitter(x: torch.Tensor, amount: int) -> torch.Tensor:
        if amount < 1:
            return x
        dy, dx = (int(v) for v in torch.randint(amount + 1, (2,), generator=generator))
        height, width = x.shape[2] - amount, x.shape[3] - amount
        return x[:, :, dy : dy + height, dx : dx + width]

    x = F.pad(images, [round(_PAD * unit)] * 4, value=0.5)
    x = jitter(x, round(_FIRST_JITTER * unit))
    scale, angle = pick(_SCALES), math.radians(pick(_ANGLES))
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], device=x.device, dtype=x.dtype)
    out = round(x.shape[2] * scale)
    grid = F.affine_grid(
        theta.expand(x.shape[0], 2, 3), [x.shape[0], 3, out, out], align_corners=False
    )
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return jitter(x, round(_SECOND_JITTER * unit))


class _RedirectedReLU(torch.autograd.Function):
    """A ReLU whose gradient, for an image whose every unit here is off, still lets through the
    part that would turn units on (Lucid's "redirected ReLU"): a filter that is silent on the
    grey starting image would otherwise never get a gradient and stay grey."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        ordinary = grad * (x > 0)
        # Descent lowers x where grad > 0: that would only push an off unit further off.
        redirected = grad * ((x > 0) | (grad < 0))
        dead = ordinary.flatten(1).abs().amax(dim=1) == 0  # (N,) images with no gradient
        return torch.where(dead.view(-1, 1, 1, 1), redirected, ordinary)


def _features(
    extractor: FeatureExtractor, layer: str, x: torch.Tensor, redirected: bool
) -> torch.Tensor:
    """(N, 3, H, W) network input -> (N, C, h, w) at ``layer``, through redirected ReLUs if
    ``redirected``."""
    if not redirected:
        return extractor(x)[layer]
    last = module_index(layer, extractor.activation)
    x = x.contiguous(memory_format=torch.channels_last)
    for index, module in enumerate(extractor.features):
        x = _RedirectedReLU.apply(x) if isinstance(module, torch.nn.ReLU) else module(x)
        if index == last:
            return x
    raise ValueError(f"the extractor stops before {layer}")


def mean_activations(
    extractor: FeatureExtractor,
    layer: str,
    rgb: torch.Tensor,
    filters: torch.Tensor,
    redirected: bool = False,
) -> torch.Tensor:
    """(N, 3, H, W) RGB in 0..1 and (N,) filter indices -> (N,) each image's mean activation of
    its filter at ``layer`` (which ``extractor`` must reach)."""
    features = _features(
        extractor, layer, extractor.preprocessing.to_network(rgb * 255.0), redirected
    )
    picked = features[torch.arange(len(filters), device=features.device), filters]  # (N, h, w)
    return picked.float().mean(dim=(1, 2))


def visualise(
    extractor: FeatureExtractor,
    layer: str,
    filters: list[int],
    settings: VisualisationSettings,
    progress: Callable[[int, int], None] | None = None,
) -> Visualised:
    """One image per filter of ``filters`` at ``layer``, optimised together (see the module
    docstring); ``progress(done, total)`` hears of the steps."""
    started = time.perf_counter()
    device = next(extractor.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    image = FourierImage(len(filters), settings.size, generator, device)
    wanted = torch.tensor(filters, device=device)
    optimiser = torch.optim.Adam(image.parameters(), lr=settings.lr)
    for step in range(settings.steps):
        optimiser.zero_grad(set_to_none=True)
        seen = _transformed(image(), settings.size, generator)
        # Redirected ReLUs only until the silent filters have woken: they cost a third more.
        redirected = step < settings.steps * REDIRECTED_SHARE
        loss = -mean_activations(extractor, layer, seen, wanted, redirected).sum()
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress(step + 1, settings.steps)
    with torch.no_grad():
        pixels = (image() * 255).round().to(torch.uint8)  # (N, 3, S, S), as it will be saved
        activations = mean_activations(extractor, layer, pixels.float() / 255, wanted)
    return Visualised(
        images=pixels.permute(0, 2, 3, 1).cpu().numpy(),
        activations=activations.cpu().numpy().astype(np.float32),
        seconds=time.perf_counter() - started,
    )
