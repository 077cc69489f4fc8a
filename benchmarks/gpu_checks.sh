#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent CUDA machine. Needs only python3 with torch,
# torchvision, numpy, scipy, Pillow, tqdm and pytest: no papermill, jupyter or venv.
#
#   OUT=runs/gpu_checks bash benchmarks/gpu_checks.sh
#
# Stages, each under its own time limit so one hang cannot cost the others (logs and JSON in $OUT):
#   1. tests/test_cuda.py: fast-path training in bf16 on the device, fused SGD, resume on the GPU, GPU
#      extraction against the CPU;
#   2. benchmarks/bench_gpu_train.py: PCB training images/s at 384×192 (fast path eager, batch 32/64/128;
#      plain fp32 DataLoader loop; torch.compile last), extraction images/s;
#   3. benchmarks/bench_train_models.py: train_model + extract_features for PCB, ResNet-50 and DenseNet-121,
#      3 whole epochs each at the reference sizes (the user's path: CUDA-graph capture, decay re-capture,
#      checkpoints);
#   4. benchmarks/bench_rerank.py at N = 20,000: numpy on this machine's CPUs (the only re-ranking backend).
# Limits sum to about 10 minutes, the runs take about 5; a lent machine gives 15 minutes in all, start-up included.
set -u
OUT=${OUT:-runs/gpu_checks}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT"
failed=()

stage() {  # stage NAME LIMIT_S CMD...: run, log to $OUT/NAME.log, print its status and last lines
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "=== $name (limit ${limit} s)"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    [[ $rc == 0 ]] || failed+=("$name")
    echo "=== $name: rc=$rc after $((SECONDS - t0)) s"
    tail -n "${TAIL:-25}" "$OUT/$name.log" | cut -c1-300
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c 'import torch, torchvision, numpy, sys; print("python", sys.version.split()[0], "torch", torch.__version__,
"torchvision", torchvision.__version__, "cuda", torch.version.cuda, "numpy", numpy.__version__)'
    nproc
} 2>&1 | tee "$OUT/machine.txt"

want() { [[ " ${STAGES:-tests train models rerank} " == *" $1 "* ]]; }  # STAGES="tests train": only those

want tests && stage pytest_cuda "${LIMIT_TESTS:-110}" $PY -m pytest -q -p no:cacheprovider -rs -s tests/test_cuda.py
want train && stage bench_gpu_train "${LIMIT_TRAIN:-250}" $PY benchmarks/bench_gpu_train.py \
    --json "$OUT/bench_gpu_train.json" --extra-batch-sizes 64 128
want models && stage bench_train_models "${LIMIT_MODELS:-150}" $PY benchmarks/bench_train_models.py \
    --json "$OUT/bench_train_models.json"
want rerank && TAIL=8 stage bench_rerank "${LIMIT_RERANK:-80}" $PY benchmarks/bench_rerank.py \
    --sizes 20000 --dense-max 0

if ((${#failed[@]})); then
    echo "FAILED stages: ${failed[*]}"
    exit 1
fi
echo "all stages passed"
