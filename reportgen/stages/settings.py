"""What the optimisation takes from a run's resolved parameters (torch-free, so that the build can
group runs into batches before any network is loaded)."""

from __future__ import annotations

from dataclasses import dataclass

from reportgen.manifest import Init, Loss, Optimizer, Params, ResolvedPrecision


@dataclass(frozen=True)
class TransferSettings:
    """What the optimisation needs from a run's resolved parameters."""

    steps: int  # per scale
    optimizer: Optimizer
    lr: float  # L-BFGS: multiplier of the quasi-Newton step; Adam: step size in 0..1 units
    content_weight: float  # alpha
    style_weight: float  # beta
    content_layer: str
    style_layers: dict[str, float]  # layer -> w_l
    init: Init
    seed: int
    # "float32" | "bfloat16": of the optimisation's network passes, as resolved on the device
    # (the manifest's "auto" is resolved by Runtime.precision before it gets here).
    precision: ResolvedPrecision = "float32"
    loss: Loss = "relative"  # see reportgen.ml.losses
    tv_weight: float = 0.0
    coarse_to_fine: int = 0  # longest side of the first scale, px; 0: one scale only
    snapshot_every: int = 0  # keep the image every this many steps; 0: never
    # Each style image's share of the target Grams (Params.blend_weights), summing to 1.
    style_blend: tuple[float, ...] = (1.0,)

    @property
    def bounded(self) -> bool:
        """Whether the image is kept in its range (0..1) during the optimisation: always, except
        when reproducing the seed, which clipped only when saving."""
        return self.loss != "seed"

    @property
    def batch_signature(self) -> tuple:
        """Transfers (of content images of one size, on one network) whose signatures are equal
        can share batched evaluations; weights, lr, init and seed may differ."""
        return (
            self.steps,
            self.optimizer,
            self.content_layer,
            tuple(self.style_layers),
            self.precision,
            self.loss,
            self.coarse_to_fine,
            self.snapshot_every,
        )


def transfer_settings(params: Params, precision: ResolvedPrecision) -> TransferSettings:
    """The optimisation's share of a run's parameters; ``precision`` as resolved on the device
    (or as written, where only the batch signature is wanted)."""
    return TransferSettings(
        steps=params.steps,
        optimizer=params.optimizer,
        lr=params.lr,
        content_weight=params.content_weight,
        style_weight=params.style_weight,
        content_layer=params.content_layer,
        style_layers=params.style_layer_weights,
        init=params.init,
        seed=params.seed,
        precision=precision,
        loss=params.loss,
        tv_weight=params.tv_weight,
        coarse_to_fine=params.coarse_to_fine,
        snapshot_every=params.snapshot_every,
        style_blend=params.blend_weights,
    )
