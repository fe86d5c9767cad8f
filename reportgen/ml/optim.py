"""Optimisers for a batch of independent images, each image with its own state, kept in [0, 1].

The transfer optimises images of RGB values in 0..1, shape (B, 3, H, W), one loss per image.
Both optimisers here take the gradient of the summed losses (each image's gradient depends only
on its own loss), move every image by its own rule, and (unless told not to) project the result
back into the box [0, 1]: a pixel outside it would be clipped when the picture is saved, and a
result whose style lives in values that cannot be shown is not the result the optimiser found
(measured: 9% of the values of an unconstrained L-BFGS run left the box, and clipping them raised
the loss of the saved picture by 70%).

Why not ``torch.optim.LBFGS``: without a line search its behaviour depends on the scale of the
loss.  Its first step is ``-g`` whenever ``|g|_1 < 1``, and it discards every curvature pair
with ``sᵀy <= 1e-10``; with a well-scaled loss and a few hundred thousand pixels both happen, the
history stays empty and every later step is ``-g`` again, a few millionths of a grey level.  (A
relative loss with β = 3 did not move in 300 steps at 256 px.)  This implementation is
invariant to the scale of the loss: its first step is a steepest-descent probe of a fixed size
in grey levels, curvature pairs are judged by the angle between ``s`` and ``y``, and the step
length is always the quasi-Newton one.  It also keeps one history per image, so a batch needs
no Python loop over images.
"""

from __future__ import annotations

import torch
from torch.profiler import record_function

from reportgen.manifest import Optimizer

# The first step of L-BFGS, before any curvature is known: steepest descent scaled so that its
# root-mean-square change is one grey level.  Large enough for the gradient's change to stand
# out of bfloat16 rounding, small enough not to overshoot.
PROBE_LEVELS = 1.0
# A step may be at most this many times as long (root-mean-square) as the last one taken: the
# first curvature estimates come from a probe of one grey level, and a full quasi-Newton step
# built on them can overshoot by orders of magnitude (measured: a 50-fold rise of the loss at
# step 4 at 32 px).  Growing by 4 per step, the step reaches any useful length within a few.
MAX_GROWTH = 4.0
# A curvature pair (s, y) is kept when cos(s, y) exceeds this; below it the pair is noise.
MIN_CURVATURE_COSINE = 1e-6


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1), to scale each image of a (B, 3, H, W) batch."""
    return values.view(-1, *([1] * 3))


class BatchLBFGS:
    """Limited-memory BFGS for ``images`` (B, 3, H, W), one history per image, kept in [0, 1].

    One loss and gradient per step, as Gatys et al.'s and Johnson's L-BFGS without line search,
    so a batch shares one evaluation per step; ``lr`` (B,) multiplies each image's quasi-Newton
    step (1: the full step).  Three safeguards make up for the missing line search:

    * a step that raised an image's loss is not kept: that image's next point is halfway back
      to its last accepted one, and the step after that is no longer than the retreat (full
      quasi-Newton steps overshoot now and then; measured at 96 px, one raised the loss
      25-fold, and inside the box such steps kept the loss from falling at all);
    * pixels on the box's edge whose gradient points outwards are held (the active set): the
      direction is computed without them, so it does not push into the wall and its projection
      does not spoil the curvature pairs;
    * a step is at most :data:`MAX_GROWTH` times as long as the one before it (and never held
      under the probe's length), so that the first full steps, built on curvature measured over
      a probe of one grey level, do not overshoot.

    :attr:`best` holds the images at their lowest accepted loss.
    """

    def __init__(
        self, images: torch.Tensor, lr: torch.Tensor, bounded: bool = True, history: int = 50
    ):
        self.images = images
        self.bounded = bounded
        self.lr = lr.to(images.device, torch.float32)
        self.history = history
        self.pairs: list[
            tuple[torch.Tensor, torch.Tensor, torch.Tensor]
        ] = []  # (s, y, rho), each (B, N) or (B,)
        batch = images.shape[0]
        self.gamma = torch.zeros(
            batch, device=images.device
        )  # sᵀy / yᵀy of the newest pair; 0: none yet
        self.rejections = torch.zeros(batch, dtype=torch.long, device=images.device)
        self.probe_scale = torch.ones(
            batch, device=images.device
        )  # halved each time a probe is rejected
        self.last_length = torch.zeros(batch, device=images.device)  # RMS of the last step taken
        self.retreated = torch.zeros(
            batch, dtype=torch.bool, device=images.device
        )  # the last step went back
        self.accepted: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (x, g, loss)

    @property
    def best(self) -> torch.Tensor:
        """(B, 3, H, W): each image at its last accepted point (its lowest loss so far)."""
        if self.accepted is None:
            return self.images.detach()
        return self.accepted[0].view_as(self.images)

    @torch.no_grad()
    def kept(self, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (B, 3, H, W), loss (B,)) that a :meth:`step` with this ``loss`` at the current
        images will keep: the current image where it is no worse than the last accepted one."""
        if self.accepted is None:
            return self.images.detach(), loss.detach()
        kept_x, _, kept_loss = self.accepted
        better = loss.detach() <= kept_loss
        images = torch.where(
            better[:, None], self.images.detach().reshape(better.shape[0], -1), kept_x
        )
        return images.view_as(self.images), torch.where(better, loss.detach(), kept_loss)

    @torch.no_grad()
    @record_function("reportgen::optimiser")
    def step(self, gradient: torch.Tensor, loss: torch.Tensor) -> None:
        """Move the images in place, given the loss (B,) and gradient (B, 3, H, W) at their
        current values."""
        batch = gradient.shape[0]
        x = self.images.detach().reshape(batch, -1).clone()
        g = gradient.reshape(batch, -1).float()
        loss = loss.detach().float()
        if self.accepted is None:
            better = torch.ones(batch, dtype=torch.bool, device=x.device)
            base_x, base_g, base_loss = x, g, loss
        else:
            kept_x, kept_g, kept_loss = self.accepted
            better = loss <= kept_loss
            # A rejected point still tells the curvature between it and the kept one.
            self._remember(x - kept_x, g - kept_g)
            base_x = torch.where(better[:, None], x, kept_x)
            base_g = torch.where(better[:, None], g, kept_g)
            base_loss = torch.where(better, loss, kept_loss)
        self.accepted = (base_x, base_g, base_loss)
        self.rejections = torch.where(
            better, torch.zeros_like(self.rejections), self.rejections + 1
        )

        held = self._held(base_x, base_g)
        free_g = torch.where(held, torch.zeros_like(base_g), base_g)
        direction = torch.where(
            held, torch.zeros_like(base_g), self._quasi_newton_direction(free_g)
        )
        # Where no curvature is known yet, where the direction does not descend (a history spoilt
        # by noise) or after repeated rejections, probe by steepest descent and start afresh.
        usable = (self.gamma > 0) & ((direction * free_g).sum(dim=1) < 0) & (self.rejections < 8)
        if not bool(usable.all()):
            self._forget(~usable)
            self.rejections = torch.where(
                usable, self.rejections, torch.zeros_like(self.rejections)
            )
        # A probe that raised the loss is retried at half the size, until one is accepted.
        self.probe_scale = torch.where(
            better,
            torch.ones_like(self.probe_scale),
            self.probe_scale * torch.where(usable, 1.0, 0.5),
        )
        size = (
            PROBE_LEVELS
            / 255
            * g.shape[1] ** 0.5
            * self.probe_scale
            / free_g.norm(dim=1).clamp_min(1e-30)
        )
        probe = -free_g * size[:, None]
        step = direction * self.lr[:, None]
        length = step.square().mean(dim=1).sqrt()
        growth = torch.where(self.retreated, 1.0, MAX_GROWTH)  # after a retreat: no longer than it
        limit = (growth * self.last_length).clamp_min(PROBE_LEVELS / 255)
        step = (
            step
            * torch.where(length > limit, limit / length.clamp_min(1e-30), torch.ones_like(length))[
                :, None
            ]
        )
        forward = base_x + torch.where(usable[:, None], step, probe)
        halfway = base_x + 0.5 * (x - base_x)  # after a rejected step: back towards the kept point
        retreat = ~better & usable
        target = torch.where(retreat[:, None], halfway, forward)
        if self.bounded:
            with record_function("reportgen::box"):
                target = target.clamp(0, 1)
        self.last_length = (target - base_x).square().mean(dim=1).sqrt()
        self.retreated = retreat
        self.images.copy_(target.view_as(self.images))

    @record_function("reportgen::box")
    def _held(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, N) bool: values on the box's edge whose descent direction leads out of the box."""
        if not self.bounded:
            return torch.zeros_like(x, dtype=torch.bool)
        return ((x <= 0) & (g > 0)) | ((x >= 1) & (g < 0))

    def _remember(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Add the pair (s, y) of each image whose pair shows curvature; elsewhere the stored
        pair has rho = 0, a no-op in the recursion."""
        sy = (s * y).sum(dim=1)
        yy = (y * y).sum(dim=1)
        good = sy > MIN_CURVATURE_COSINE * s.norm(dim=1) * y.norm(dim=1)  # false for NaN, too
        if not bool(good.any()):
            return  # no image learns anything: keep the history's slots for pairs that do
        rho = torch.where(good, 1 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        # A rejected pair is stored as zeros, so that even a non-finite one is a no-op.
        s, y = torch.where(good[:, None], s, 0.0), torch.where(good[:, None], y, 0.0)
        self.pairs.append((s, y, rho))
        if len(self.pairs) > self.history:
            self.pairs.pop(0)
        self.gamma = torch.where(good, sy / yy.clamp_min(1e-30), self.gamma)

    def _forget(self, images: torch.Tensor) -> None:
        """Drop the history of the images where ``images`` (B,) is true."""
        keep = (~images).float()
        self.pairs = [
            (s * keep[:, None], y * keep[:, None], rho * keep) for s, y, rho in self.pairs
        ]
        self.gamma = self.gamma * keep

    def _quasi_newton_direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H·g by the two-loop recursion, H the inverse-Hessian estimate of each image's
        history."""
        q = g.clone()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * (s * q).sum(dim=1)
            q -= alpha[:, None] * y
            alphas.append(alpha)
        r = q * self.gamma[:, None]
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas), strict=True):
            beta = rho * (y * r).sum(dim=1)
            r += s * (alpha - beta)[:, None]
        return -r


class BatchAdam:
    """Adam (Kingma & Ba) for ``images`` (B, 3, H, W), projected on [0, 1] after every step.

    Adam works element by element, so one state for the batch is one state per image; ``lr``
    (B,) is each image's step size in 0..1 units (0.01 is about 2.5 grey levels per step).
    """

    def __init__(
        self,
        images: torch.Tensor,
        lr: torch.Tensor,
        bounded: bool = True,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.images = images
        self.bounded = bounded
        self.lr = _per_image(lr.to(images.device, torch.float32))
        self.betas = betas
        self.eps = eps
        self.mean = torch.zeros_like(images)
        self.square = torch.zeros_like(images)
        self.steps = 0

    @property
    def best(self) -> torch.Tensor:
        """The images as they are: Adam's path is not monotone by design, and its last point is
        its result."""
        return self.images.detach()

    def kept(self, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, loss): Adam keeps every point it evaluates."""
        return self.images.detach(), loss.detach()

    @torch.no_grad()
    @record_function("reportgen::optimiser")
    def step(self, gradient: torch.Tensor, loss: torch.Tensor | None = None) -> None:
        """Move the images in place, given the gradient at their current values (the loss is
        not needed)."""
        beta1, beta2 = self.betas
        self.steps += 1
        self.mean.mul_(beta1).add_(gradient, alpha=1 - beta1)
        self.square.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
        mean = self.mean / (1 - beta1**self.steps)
        root = (self.square / (1 - beta2**self.steps)).sqrt_().add_(self.eps)
        self.images.sub_(self.lr * mean / root)
        if self.bounded:
            with record_function("reportgen::box"):
                self.images.clamp_(0, 1)


def make_optimizer(
    name: Optimizer, images: torch.Tensor, lr: torch.Tensor, bounded: bool = True
) -> BatchLBFGS | BatchAdam:
    """``bounded``: project on [0, 1] after every step (off only to reproduce code that did not)."""
    if name == "lbfgs":
        return BatchLBFGS(images, lr, bounded)
    if name == "adam":
        return BatchAdam(images, lr, bounded)
    raise ValueError(f"unknown optimizer {name!r}")
