#!/bin/bash
# The measurements that need a CUDA GPU, as one command: a GPU machine is often lent for minutes,
# not hours, so every stage has its own time limit and writes its results as soon as it ends.
#
#   FACELAB_COMMIT=$(git rev-parse HEAD) OUT=/tmp/gpu bash scripts/gpu_checks.sh [STAGE ...]
#
# Run from the repository root, with a Python that has torch with CUDA, torch_geometric, scipy,
# safetensors and tqdm (facelab itself is read from the checkout). FACELAB_COMMIT names the code's
# commit where the copy has no git history (the results files record it). Stages, in this order
# by default (about 11 minutes on one H100):
#   tests     the CUDA tests (bf16 training, the CUDA training path)
#   bench     the benchmark suite's CUDA rows: the Chebyshev layer and the training step against
#             PyG, inference (benchmarks_cuda.{json,md})
#   memory    peak GPU memory of training at 26,317 vertices, batch 16, bf16 off and on
#             (large_mesh_memory_fp32.json, large_mesh_memory_bf16.json)
#   train     one short `facelab train --device cuda` end to end (train.log)
#   long      the paper's full and gca variants trained 30 epochs on SynthFaces on CUDA: does the
#             paper's ordering appear with budget? (paper_tables_cuda.{json,md})
# DEVICE=cpu QUICK=1 runs the same stages as a smoke test on a machine without a GPU.
set -u
OUT=${OUT:-/tmp/facelab-gpu-checks}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export FACELAB_CACHE_DIR=${FACELAB_CACHE_DIR:-$OUT/cache}
mkdir -p "$OUT"
STAGES=${*:-tests bench memory train long}
IDENTITIES=100 EPOCHS=30 STEPS=10
[ -n "$QUICK" ] && IDENTITIES=4 EPOCHS=1 STEPS=1

stage() {  # stage NAME SECONDS COMMAND...: run it, log it, say how it ended
    local name=$1 seconds=$2
    shift 2
    echo "=== $name ($(date -u +%H:%M:%S), limit ${seconds}s): $*"
    timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
    local status=$?
    tail -n 15 "$OUT/$name.log"
    echo "=== $name ended with status $status"
}

{ nvidia-smi -L 2>/dev/null; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
    | tee "$OUT/machine.txt"

for name in $STAGES; do
    case $name in
    tests)
        stage tests 120 $PY -m pytest -q -p no:cacheprovider tests/test_amp.py tests/test_distributed.py -k cuda ;;
    bench)
        sizes=${QUICK:+--sizes 642}
        stage bench 330 $PY -m benchmarks --device "$DEVICE" ${QUICK:+--quick} $sizes --only cheb_layer \
            --only training_step --only neutralise --json "$OUT/benchmarks_$DEVICE.json" \
            --markdown "$OUT/benchmarks_$DEVICE.md" ;;
    memory)
        stage memory_fp32 90 $PY scripts/large_mesh_memory.py --device "$DEVICE" --steps "$STEPS" \
            --json "$OUT/large_mesh_memory_fp32.json"
        [ "$DEVICE" = cuda ] && stage memory_bf16 90 $PY scripts/large_mesh_memory.py --device cuda \
            --steps "$STEPS" --amp bf16 --json "$OUT/large_mesh_memory_bf16.json" ;;
    train)
        stage train 150 $PY -m facelab train --data synth --identities "$IDENTITIES" --epochs 1 \
            --device "$DEVICE" --out "$OUT/run" ;;
    long)
        stage long 330 $PY -m benchmarks.paper_tables --datasets synth --variants gca full --seeds 0 \
            --epochs "$EPOCHS" --device "$DEVICE" --runs "$OUT/long-runs" --reuse-runs \
            --name "paper_tables_$DEVICE" --out "$OUT" ;;
    *)
        echo "unknown stage $name: expected tests, bench, memory, train or long" >&2 ;;
    esac
done
echo "results in $OUT:"
ls "$OUT"
