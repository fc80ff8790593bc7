#!/usr/bin/env bash
# Issue 26's GPU job in three steps of at most 9 minutes each on one H100 (80 GB).
#
#   MODEL=/path/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf CTXAGENT_COMMIT=<sha> bash benchmarks/issue26_gpu.sh 1   # ~6 min
#   ... bash benchmarks/issue26_gpu.sh 2   # ~7.5 min (starts no config past 400 s after loading)
#   ... bash benchmarks/issue26_gpu.sh 3   # ~6 min
#   ... bash benchmarks/issue26_gpu.sh quick   # every script at toy sizes (~2 min on a GPU; CPU too, slowly)
#
# 1: Qwen needles at 32K (dense, searched 0.10 and 0.05, default; 64 questions) with the prefill
#    time of each config; the mixed-pattern micro-benchmark at 128K; the GPU tests.
# 2: Qwen needles at 128K (YaRN x4), the same configs.
# 3: chunked prefill of the 8B-shaped model at 512K and 1M tokens, sparse against dense.
# Results go to $OUT (the device tool's return folder) if set, else benchmarks/results.
# The GGUF is converted once into a transformers folder in /tmp (kept while the machine stays
# warm); reading it needs the `gguf` wheel, installed here from $WHEELS if given.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
RESULTS="${OUT:-benchmarks/results}"
CONVERTED=/tmp/ctxagent-qwen-hf
if [ -n "${WHEELS:-}" ] && ! python -c "import gguf" 2>/dev/null; then
    python -m pip install --no-deps --no-index -q "$WHEELS"/gguf-*.whl
fi
needles() {
    python benchmarks/needles_real.py --model "$MODEL" --convert-dir "$CONVERTED" --out "$RESULTS" "$@"
}
case "${1:?step 1, 2, 3 or quick}" in
1)
    needles --tokens 32768 --needles 64 --name needles_qwen_32k --max-seconds 300 --chunked default --prefill-chunk 8192
    python benchmarks/mixed_patterns.py --out "$RESULTS" --name mixed_patterns_h100
    python -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py tests/test_kernels.py 2>&1 | tail -15
    ;;
2)
    needles --tokens 131072 --needles 64 --name needles_qwen_128k --max-seconds 400
    ;;
3)
    python benchmarks/prefill.py --lengths 524288 1048576 --prefill-chunk 32768 --reps 1 --warmup-tokens 65536 \
        --patterns vertical_slash --no-ceiling --out "$RESULTS" --name prefill_chunked_h100
    ;;
quick)
    needles --quick --name needles_qwen_quick
    python benchmarks/mixed_patterns.py --quick --out "$RESULTS"
    python benchmarks/prefill.py --quick --out "$RESULTS"
    ;;
*)
    echo "unknown step $1" >&2; exit 2
    ;;
esac
