#!/usr/bin/env bash
# Everything trtssd checks and measures on a lent GPU, in one call (the device machine keeps
# nothing between calls, so one script builds, checks and times).
#
#   ../shared/device/stage.sh nvdec && mkdir -p .device-carry/models && cp ../shared/models/* .device-carry/models/
#   python -m trtssd.commands.bench_video .device-carry/clip-1080p-h264.mp4   # the H.264 clip (PyAV, here)
#   device run, carry [".device-carry"]:  . .device-carry/setup.sh && benchmarks/run_on_device.sh [check|kernel|bench|pipe|pipe-check|pipe-bench|pipe-more|byo|final-check|final-bench|diag|last|r4|r4b|r4c|r4d|r5|r5b|r6|r6b|r7|r7b|r7c|r7d|r8|r8b|r9|r9b|r9c|r9-check|r11|r11b|r12k|r12f|r13|r13b|r14|r15|r16|r16b|all]
#
# check: GPU tests and compute-sanitizer; kernel: Nsight Compute of the preprocessing
# variants and of the kernel's floor (benchmarks/bench_kernel_floor.py); bench: kernel +
# microbenchmarks and `trtssd bench`; pipe: the pipeline's GPU tests (NVDEC) and the bench's ceilings and real-video rows; diag: the code of 19475d8^ beside
# today's, and py-spy stacks of the host threads.
# Writes logs and JSON under $OUT (the device tool's output folder) or bench-out/.
set -uo pipefail
phase=${1:-all}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export TRTSSD_MODEL_DIR=${TRTSSD_MODEL_DIR:-$PWD/.device-carry/models}
export TRTSSD_MODEL=${TRTSSD_MODEL:-$TRTSSD_MODEL_DIR/detect.tflite}
export TRTSSD_CACHE=${TRTSSD_CACHE:-/tmp/trtssd-cache}
export PYTHONUNBUFFERED=1
export TRTSSD_TEST_CLIPS=${TRTSSD_TEST_CLIPS:-$PWD/.device-carry/test-clips}   # python -m tests.support.clips DIR
# the real-video rows: the carried clip (the device has no PyAV to make one), else auto
CLIP=.device-carry/clip-1080p-h264.mp4
VIDEO=$([ -f "$CLIP" ] && echo "$CLIP" || echo auto)
step() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
run() { local t=$1; shift; timeout "$t" "$@"; local rc=$?; echo "-- rc=$rc: $*"; return 0; }
# sanitized WHAT LIMIT PYTEST-ARGS...: those tests under compute-sanitizer memcheck, then racecheck
sanitized() {
    local what=$1 limit=$2; shift 2
    for tool in memcheck racecheck; do
        step "compute-sanitizer $tool: $what"
        run "$limit" compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
            python3 -m pytest -q -p no:cacheprovider "$@"
    done
}
# the bench's two tables: fp32 on synthetic 1080p and the H.264 clip (CPU and GPU decode,
# decode-only rows), then fp16 on synthetic 1080p. Arguments: fp32 seconds per mode and time
# limit, fp16 seconds per mode and time limit, the fp32 and fp16 file names under $OUT
fp32_table() {     # seconds per mode, time limit, file name under $OUT
    step "trtssd bench fp32: synthetic 1080p and the 1080p H.264 clip, CPU and GPU decode"
    run "$2" python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds "$1" \
        --video "$VIDEO" --json "$OUT/$3.json" --chart "$OUT/$3.png"
}
bench_tables() {
    fp32_table "$1" "$2" "$5"
    step "trtssd bench fp16, synthetic 1080p"
    run "$4" python3 -m trtssd bench --backend torch --device cuda --precision fp16 --seconds "$3" \
        --json "$OUT/$6.json" --chart "$OUT/$6.png"
}
# --draw rows (GPU drawing into the device frame + download) after a table that has the
# undrawn rows: modes, depths, time limit
draw_rows() {
    step "drawing: $1 at depths $2 with --draw; the undrawn rows: bench.json above"
    run "$3" python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 1 \
        --modes "$1" --depths "$2" --draw --json "$OUT/bench_draw.json" --no-chart
}
# what is left of the call (until second $1 of the script) goes to the GPU-bearing test
# folders (the rest of the suite runs in CI); killed at a limit it would print nothing useful
gpu_folders() {
    local left=$(( $1 - SECONDS ))
    step "GPU-bearing test folders on the GPU machine (${left} s left)"
    [ "$left" -gt 60 ] && run "$left" python3 -m pytest -q -rs -p no:cacheprovider -n 8 --dist loadfile \
        tests/pipeline tests/io tests/preprocess tests/backends tests/gpu tests/test_detector.py
}

# floor_ncu B: the preprocessing kernel beside its floor kernels (bench_kernel_floor) at batch
# B under Nsight Compute, every launch, summarised per kernel
floor_ncu() {
    run 90 ncu --clock-control none --kernel-name regex:"floor_|preprocess_u8" \
        --metrics gpu__time_duration.sum,dram__bytes.sum --print-summary per-kernel \
        python3 -m benchmarks.bench_kernel_floor --batches "$1" --reps 5 2>&1
}

step "environment"
date -u
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv
python3 -c "import sys, numpy, cv2, torch; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cv2', cv2.__version__, 'torch', torch.__version__)"

if [ "$phase" = check ] || [ "$phase" = all ]; then
    step "GPU tests"
    # the whole suite: the GPU tests run here, the rest runs again beside them
    run 480 python3 -m pytest -q -rs -p no:cacheprovider tests
    step "compute-sanitizer memcheck: every preprocessing variant (RGB and YUV formats, YUV planes)"
    run 240 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m benchmarks.bench_preprocess --sanitize
    step "compute-sanitizer memcheck: the YUV GPU tests (pitched surfaces, planes at allocation ends)"
    run 300 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/preprocess/test_preprocess_gpu.py -k "yuv_pitched or yuv_device_planes or frames_at_allocation_ends"
    step "compute-sanitizer memcheck + racecheck: postprocessing kernels"
    run 240 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/postprocess/test_postprocess_gpu.py -k "matches_numpy or fused_limit or heavy_overlap"
    run 240 compute-sanitizer --tool racecheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/postprocess/test_postprocess_gpu.py -k "matches_numpy or fused_limit or heavy_overlap"
fi

if [ "$phase" = kernel ] || [ "$phase" = bench ] || [ "$phase" = all ]; then
    step "preprocessing kernel duration, Nsight Compute (1080p f32 -> 300x300, batch 1 and 8; BGR now, BGR of 19475d8, NV12 now)"
    # the committed kernel, and the one of commit 19475d8 (before the experiments were removed)
    # when git history is here, compiled by the same Python through TRTSSD_KERNEL_DIR
    # (the device machine gets no .git: stage it as .device-carry/kernel-19475d8/preprocess/preprocess.cu)
    old=$PWD/.device-carry/kernel-19475d8
    if [ ! -f "$old/preprocess/preprocess.cu" ]; then
        mkdir -p "$old/preprocess"
        git show 19475d8:trtssd/preprocess/preprocess.cu > "$old/preprocess/preprocess.cu" 2>/dev/null || rm -f "$old/preprocess/preprocess.cu"
    fi
    if [ -f "$old/preprocess/preprocess.cu" ]; then
        kernels="now:$PWD/trtssd 19475d8:$old"
    else
        echo "-- no git history here: only the committed kernel is timed"
        kernels="now:$PWD/trtssd"
    fi
    for b in 1 8; do
        for k in $kernels; do
            echo "-- ncu kernel=${k%%:*} BGR batch=$b"
            TRTSSD_KERNEL_DIR=${k#*:} run 120 ncu --clock-control none --kernel-name preprocess_u8 --launch-skip 20 --launch-count 1 \
                --metrics gpu__time_duration.sum,dram__bytes.sum \
                python3 -m benchmarks.bench_preprocess --sizes 1080p --batches $b --dtypes float32 \
                --quick --no-torch --no-opencv 2>&1 | grep -E "gpu__time|dram__bytes|rc="
        done
        echo "-- ncu kernel=now NV12 batch=$b (issue 13: no slower than BGR)"
        run 120 ncu --clock-control none --kernel-name preprocess_u8 --launch-skip 20 --launch-count 1 \
            --metrics gpu__time_duration.sum,dram__bytes.sum \
            python3 -m benchmarks.bench_preprocess --sizes 1080p --batches $b --dtypes float32 \
            --input-formats NV12 --quick --no-torch --no-opencv 2>&1 | grep -E "gpu__time|dram__bytes|rc="
    done
    step "the kernel's floor beside it: its stores alone and a copy of its bytes (bench_kernel_floor)"
    for b in 1 8; do floor_ncu $b | grep -E "floor_|preprocess_u8|gpu__time|dram__bytes|rc="; done
    step "preprocessing kernel by CUDA events, BGR and NV12 side by side (1080p -> 300x300)"
    run 240 python3 -m benchmarks.bench_preprocess --sizes 1080p --batches 1 8 --dtypes float32 \
        --input-formats BGR NV12 YUYV --no-torch --no-opencv --json "$OUT/preprocess_yuv.json"
fi

if [ "$phase" = bench ] || [ "$phase" = all ]; then
    step "trtssd bench (make bench), PyTorch backend, CUDA graph, fp32, synthetic 1080p"
    run 600 python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 3 \
        --video "$VIDEO" --json "$OUT/bench.json" --chart "$OUT/bench.png"
    step "preprocessing microbenchmark"
    run 300 python3 -m benchmarks.bench_preprocess --json "$OUT/preprocess.json"
    step "postprocessing microbenchmark"
    run 180 python3 benchmarks/bench_postprocess.py --json "$OUT/postprocess.json"
    step "network alone, PyTorch backend"
    run 300 python3 benchmarks/bench_backend.py --batch 1 8 32 --precision fp32 fp16 \
        --mode graph eager --json "$OUT/backend.json"
    step "trtssd bench, float16"
    run 300 python3 -m trtssd bench --backend torch --device cuda --precision fp16 --seconds 2 \
        --json "$OUT/bench_fp16.json" --no-chart
    step "trtssd bench with drawing (sync, gpu, pipelined d2)"
    run 200 python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 2 \
        --modes sync,gpu,pipelined --depths 2 --draw --json "$OUT/bench_draw.json" --no-chart
fi
# --- pipeline (branch pipe): ceilings at each mode's concurrency, NVDEC ---------
# pipe = pipe-check, pipe-bench, pipe-more (each meant to fit one 10-minute device call)
if [ "$phase" = pipe ] || [ "$phase" = pipe-check ] || [ "$phase" = all ]; then
    step "pipeline GPU tests: NVDEC frames against FFmpeg, NVDEC through every mode, in-flight ceiling"
    run 400 python3 -m pytest -q -rs -p no:cacheprovider tests/io/test_nvdec.py tests/pipeline/test_pipeline_nvdec_gpu.py \
        tests/pipeline/test_pipeline_gpu.py tests/commands/test_bench_video.py
    step "compute-sanitizer memcheck: NVDEC frames through the kernel"
    run 400 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/io/test_nvdec.py -k "gpu or nvdec_frames or host_frames"
fi
if [ "$phase" = pipe ] || [ "$phase" = pipe-bench ] || [ "$phase" = all ]; then
    bench_tables 3 600 2 300 pipe_fp32 pipe_fp16
fi
if [ "$phase" = pipe ] || [ "$phase" = pipe-more ] || [ "$phase" = all ]; then
    step "network alone at 1-4 streams in flight (bench_backend, the bench's in-flight ceilings cross-checked)"
    run 300 python3 benchmarks/bench_backend.py --batch 1 8 --precision fp32 fp16 --mode graph \
        --streams 1 2 3 4 --no-check --json "$OUT/pipe_backend_streams.json"
    step "multi at depth 3: rounds in flight against the b8 x 3 ceiling"
    run 200 python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 2 \
        --modes multi --multi-depth 3 --json "$OUT/pipe_multi_d3.json" --no-chart
    step "drawing on the clip (pooled frames, drawn in place) and on synthetic frames"
    run 300 python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 2 \
        --modes gpu,pipelined --depths 2 --source "$( [ -f "$CLIP" ] && echo "$CLIP" || echo synthetic:1920x1080)" \
        --decode cpu --draw --json "$OUT/pipe_draw_clip.json" --no-chart
fi
# --- end pipeline ------------------------------------------------------------------------------
# ---- byo (issue 10 / issue 15 item 6): foreign ONNX SSDs, every postprocessing kind ---------
if [ "$phase" = check ] || [ "$phase" = all ] || [ "$phase" = byo ]; then
    step "byo: GPU tests of the new output kinds and the pytorch-ssd mb1-ssd"
    run 600 python3 -m pytest -q -rs -p no:cacheprovider tests/postprocess/test_postprocess_gpu.py \
        tests/postprocess/test_postprocess_kinds.py tests/models/test_onnx_models_gpu.py \
        tests/models/test_onnx_models.py tests/gpu/test_kernels_compile.py
    step "byo: compute-sanitizer memcheck + racecheck: postprocessing (merged mask + scan), mb1-ssd layout"
    for tool in memcheck racecheck; do
        run 300 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
            python3 -m pytest -q -p no:cacheprovider tests/postprocess/test_postprocess_gpu.py \
            tests/models/test_onnx_models_gpu.py -k "matches_numpy or heavy_overlap or gpu_postprocess"
    done
fi
if [ "$phase" = bench ] || [ "$phase" = all ] || [ "$phase" = byo ]; then
    step "byo: postprocessing, TFLite layout (worst case at batch 1: target <= 50 us)"
    run 180 python3 benchmarks/bench_postprocess.py --cases worst,realistic,all --batches 1,8 \
        --json "$OUT/postprocess_tflite.json"
    step "byo: postprocessing, pytorch-ssd layout (3000 x 21, per-class; targets <= 50 us b1, <= 10 us/frame b8)"
    run 180 python3 benchmarks/bench_postprocess.py --layout pytorch-ssd --cases worst,realistic \
        --batches 1,8 --json "$OUT/postprocess_pytorch_ssd.json"
    step "byo: end to end, mb1-ssd with random weights (pytorch-ssd export) vs the TFLite model"
    run 120 python3 -c "import sys; sys.path.insert(0, 'tests/models'); import torch, pytorch_ssd_net as P; P.export_onnx(torch, P.build_mb1_ssd(torch), '$OUT/mb1-ssd.onnx', dynamic_batch=True)"
    run 60 python3 -m trtssd info "$OUT/mb1-ssd.onnx"
    run 420 python3 -m trtssd bench --model "$OUT/mb1-ssd.onnx" --backend torch --device cuda \
        --precision fp32 --seconds 3 --json "$OUT/bench_mb1.json" --no-chart
fi
# ---- end byo --------------------------------------------------------------------------------
# ---- final: the whole round in two calls of under 10 minutes (final-check, final-bench) ----------
if [ "$phase" = final-check ]; then
    step "the whole suite on the GPU machine (GPU tests run here; carried clips for the video tests)"
    run 330 python3 -m pytest -q -rs -p no:cacheprovider -n 6 --dist loadfile tests
    step "compute-sanitizer memcheck: every preprocessing variant, RGB and YUV"
    run 120 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m benchmarks.bench_preprocess --sanitize
    step "compute-sanitizer memcheck: YUV planes and pitched surfaces; NVDEC frames"
    run 90 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/preprocess/test_preprocess_gpu.py \
        tests/io/test_nvdec.py \
        -k "yuv_pitched or yuv_device_planes or frames_at_allocation_ends or gpu or nvdec_frames or host_frames"
fi
if [ "$phase" = last ]; then
    step "GPU tests of this round's last changes: postprocessing (mapped result, scan, per-class sort), drawing"
    run 120 python3 -m pytest -q -rs -p no:cacheprovider tests/postprocess/test_postprocess_gpu.py \
        tests/postprocess/test_postprocess_kinds.py tests/models/test_onnx_models_gpu.py \
        tests/io/test_draw_gpu.py tests/io/test_draw_slot_host_logic.py
fi
if [ "$phase" = final-bench ] || [ "$phase" = last ]; then
    bench_tables 1 200 1 70 bench bench_fp16
    draw_rows gpu,pipelined 2,4 60
    step "postprocessing: TFLite layout and pytorch-ssd layout (3000 x 21, per-class)"
    run 45 python3 benchmarks/bench_postprocess.py --cases worst,realistic --batches 1,8 \
        --json "$OUT/postprocess_tflite.json"
    run 45 python3 benchmarks/bench_postprocess.py --layout pytorch-ssd --cases worst,realistic \
        --batches 1,8 --json "$OUT/postprocess_pytorch_ssd.json"
fi
if [ "$phase" = last ]; then
    step "preprocessing from torch tensors and own views (host cost per call), 1080p f32"
    run 60 python3 -m benchmarks.bench_preprocess --sizes 1080p --batches 1 8 --dtypes float32 \
        --no-opencv --reps 100 --json "$OUT/preprocess.json"
fi
if [ "$phase" = final-check ] || [ "$phase" = last ]; then
    sanitized "postprocessing (every output kind)" 90 tests/postprocess/test_postprocess_gpu.py \
        tests/models/test_onnx_models_gpu.py -k "matches_numpy or heavy_overlap or gpu_postprocess"
fi
if [ "$phase" = last ]; then
    step "compute-sanitizer memcheck: drawing"
    run 60 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/io/test_draw_gpu.py \
        tests/io/test_draw_slot_host_logic.py -k "gpu_drawer or on_a_gpu"
    gpu_folders 540
fi
if [ "$phase" = last ] || [ "$phase" = final-check ]; then
    step "the device-memory test alone (it reads the whole device's free memory; skipped under -n)"
    run 90 python3 -m pytest -q -rs -p no:cacheprovider tests/pipeline/test_pipeline_gpu.py -k memory_flat
fi
if [ "$phase" = final-bench ]; then
    step "end to end, mb1-ssd with random weights (pytorch-ssd export), the same mode table"
    run 40 python3 -c "import sys; sys.path.insert(0, 'tests/models'); import torch, pytorch_ssd_net as P; P.export_onnx(torch, P.build_mb1_ssd(torch), '/tmp/mb1-ssd.onnx', dynamic_batch=True)"
    run 90 python3 -m trtssd bench --model /tmp/mb1-ssd.onnx --backend torch --device cuda \
        --precision fp32 --seconds 1 --json "$OUT/bench_mb1.json" --no-chart
    step "several-GPU path on one GPU: multi x8 in process against --gpus 1 (a worker process)"
    run 60 python3 -m trtssd bench --backend torch --device cuda --modes multi --sources-count 8 \
        --gpus 1 --precision fp32 --frames 3000 --no-chart --out-dir "$OUT/gpus1"
fi
# ---- end final ----------------------------------------------------------------------------------
# ---- r4: round 4's changes (NVDEC start in setup, deferred drawing delivery, tables kept) ----
if [ "$phase" = r4 ]; then
    step "GPU tests of round 4's changes: drawing (deferred delivery), NVDEC, preprocessing tables"
    run 200 python3 -m pytest -q -rs -p no:cacheprovider -n 4 --dist loadfile tests/io/test_draw_gpu.py \
        tests/io/test_draw_slot_host_logic.py tests/io/test_nvdec.py tests/pipeline/test_pipeline_nvdec_gpu.py \
        tests/preprocess/test_preprocess_gpu.py
    fp32_table 1 200 bench
    draw_rows gpu,pipelined 2,3,4 60
    step "preprocessing from torch tensors and own views (host cost per call), 1080p f32"
    run 60 python3 -m benchmarks.bench_preprocess --sizes 1080p --batches 1 8 --dtypes float32 \
        --no-opencv --reps 100 --json "$OUT/preprocess.json"
    step "compute-sanitizer memcheck: drawing"
    run 60 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        python3 -m pytest -q -p no:cacheprovider tests/io/test_draw_gpu.py \
        tests/io/test_draw_slot_host_logic.py -k "gpu_drawer or on_a_gpu"
fi
if [ "$phase" = r4b ]; then
    step "GPU tests of the torch backend's direct graph launch"
    run 120 python3 -m pytest -q -rs -p no:cacheprovider tests/backends/test_backends_gpu.py
    bench_tables 1 200 1 80 bench bench_fp16
    draw_rows gpu,pipelined,multi 2,3,4 80
    gpu_folders 520
    step "the device-memory test alone (it reads the whole device's free memory; skipped under -n)"
    run 60 python3 -m pytest -q -rs -p no:cacheprovider tests/pipeline/test_pipeline_gpu.py -k memory_flat
fi
# ---- r4c: drawing and multi's file queue, policies side by side in one call (run 13, on
# commit 2ab4357, whose own policy was "now": a drawn batch delivered once its download ran,
# up to depth batches later; multi queueing max(4, 2 x depth) frames). Stage the variants
# here first (each a copy of trtssd/ with one policy changed; not part of the product):
#   for v in one none q2; do mkdir -p .device-carry/variants/$v && git archive 2ab4357 trtssd | tar -x -C .device-carry/variants/$v; done
#   then patch them as NOTES_pipeline.md (round 4) says -- one: delivered after the next
#   result; none: the result waits for the download (the code kept); q2: multi queues depth
if [ "$phase" = r4c ]; then
    clip=$PWD/$CLIP
    D="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 2 --no-chart"
    for r in 1 2; do
        step "repetition $r: undrawn rows, this tree"
        run 60 $D --modes gpu,pipelined --depths 2,3,4 --json "$OUT/r4c_undrawn_$r.json"
        for v in now one none; do
            step "repetition $r: --draw, policy $v"
            dir=$PWD; [ "$v" != now ] && dir=$PWD/.device-carry/variants/$v
            (cd "$dir" && PYTHONPATH=/tmp/site:$dir run 60 $D --modes gpu,pipelined --depths 2,3,4 --draw \
                --json "$OUT/r4c_draw_${v}_$r.json")
        done
        for v in now q2; do
            step "repetition $r: multi x8 on the clip, GPU decode, queue policy $v"
            dir=$PWD; [ "$v" != now ] && dir=$PWD/.device-carry/variants/$v
            (cd "$dir" && PYTHONPATH=/tmp/site:$dir run 60 $D --modes multi --source "$clip" --decode gpu \
                --seconds 1 --json "$OUT/r4c_multi_${v}_$r.json")
        done
    done
fi
if [ "$phase" = r4d ]; then
    fp32_table 1 200 bench
    draw_rows gpu,pipelined 2,3,4 60
    gpu_folders 370
fi
# ---- r5 / r5b (round 5; two calls of ~300-450 s each):
# r5: the GPU tests of the changed code, the foreign-array host cost (per-type frame keys),
#   PCIe both ways with the GPU's placement, and this tree side by side with the variants on
#   synthetic 1080p, twice each, alternating (run 15 ran it with BLOCKING_SYNC waits in the tree
#   and spinning ones in the variant; the tree spins since);
# r5b: PCIe, the same side by side on the H.264 clip with NVDEC (pipelined d2, multi x8), then
#   the drawn rows and py-spy stacks of the pipelined threads (on-CPU samples only; py-spy
#   slows the run: stacks, not rates).
# Stage .device-carry/tools/py-spy (the py-spy wheel's binary) and the variants: "block", every
# wait through a BLOCKING_SYNC event (the code of af0397c), and "nvblock", this tree with only
# NVDEC's per-frame copy waited on through one:
#   V=.device-carry/variants; mkdir -p $V/block $V/nvblock
#   git archive af0397c trtssd | tar -x -C $V/block
#   git archive HEAD trtssd | tar -x -C $V/nvblock && git show af0397c:trtssd/io/nvdec.py > $V/nvblock/trtssd/io/nvdec.py
#   sed -i 's/self._copied = host_wait_event()/self._copied = driver().Event(3)/' $V/nvblock/trtssd/io/nvdec.py
# side_by_side TAG LIMIT "VARIANTS" BENCH-ARGS...: this tree ("now") and each variant under
# .device-carry/variants, twice, alternating
side_by_side() {
    local tag=$1 limit=$2 variants=$3; shift 3
    local D="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --no-chart"
    for r in $(seq 1 "${REPS:-2}"); do
        for v in now $variants; do
            local dir=$PWD; [ "$v" != now ] && dir=$PWD/.device-carry/variants/$v
            step "repetition $r, variant $v: $tag"
            (cd "$dir" && PYTHONPATH=/tmp/site:$dir run "$limit" $D "$@" \
                --json "$OUT/r5_${tag}_${v}_$r.json")
        done
    done
}
pcie() {
    step "PCIe: 1080p frames up, down and both at once; where the GPU and this process sit"
    nvidia-smi topo -m
    run 60 python3 -m benchmarks.bench_pcie --json "$OUT/pcie.json"
}
if [ "$phase" = r5 ]; then
    step "GPU tests: preprocessing (frame keys per type), the kernels, the pipelines' waits"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider -n 4 --dist loadfile \
        tests/preprocess tests/gpu tests/pipeline/test_pipeline_gpu.py tests/io/test_draw_gpu.py
    step "preprocessing from torch tensors and own views (host cost per call), 1080p f32"
    run 60 python3 -m benchmarks.bench_preprocess --sizes 1080p --batches 1 8 --dtypes float32 \
        --no-opencv --reps 200 --json "$OUT/preprocess.json"
    pcie
    side_by_side synthetic 60 block --modes gpu,pipelined,multi --depths 2,3,4 --seconds 1
fi
if [ "$phase" = r5b ]; then
    pcie
    side_by_side nvdec 60 "block nvblock" --modes pipelined,multi --depths 2 --source "$PWD/$CLIP" \
        --decode gpu --seconds 1
    B="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --no-chart"
    step "undrawn and drawn pipelined rows without a profiler, for the stacks' context"
    run 60 $B --modes pipelined --depths 2,3,4 --seconds 1 --json "$OUT/r5_undrawn.json"
    run 60 $B --modes pipelined --depths 2,3,4 --seconds 1 --draw --json "$OUT/r5_draw.json"
    SPY=.device-carry/tools/py-spy
    for m in "pipelined --depths 4" "pipelined --depths 4 --draw"; do
        tag=$(echo "$m" | tr -d ' -' | sed 's/pipelineddepths/p/')
        step "py-spy, every thread, $m (synthetic 1080p)"
        run 60 $SPY record -r 250 -f raw --threads -o "$OUT/spy_$tag.txt" -- \
            $B --modes $m --seconds 3 --json "$OUT/spy_$tag.json"
    done
    gzip -f "$OUT"/spy_*.txt
fi
# ---- r6 (round 6, one call of ~450 s): the driver thread keeping the GIL through its upload
# and graph launch (this tree) side by side with the code before it ("released", its calls
# releasing the GIL), undrawn and drawn, twice each alternating; then fp16 if time is left.
# Every JSON goes into $OUT/r6.tgz (the device tool brings back at most 8 files). Stage:
#   mkdir -p .device-carry/variants/released && git archive <the commit before> trtssd | tar -x -C .device-carry/variants/released
if [ "$phase" = r6 ]; then
    R=/tmp/r6; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    end=${R6_SECONDS:-470}
    step "GPU tests: the preprocessing's uploads, the pipelines, the torch backend's graph launch"
    run 110 python3 -m pytest -q -rs -p no:cacheprovider -n 8 --dist loadfile \
        tests/preprocess/test_preprocess_gpu.py tests/preprocess/test_preprocess_yuv.py \
        tests/pipeline/test_pipeline_gpu.py tests/backends/test_backends_gpu.py tests/gpu
    pack() { tar czf "$SAVED_OUT/r6.tgz" -C "$R" .; }     # after each step: a cut-off call keeps it
    side_by_side undrawn 60 released --modes gpu,pipelined,multi --depths 2,3,4 --seconds 1; pack
    side_by_side drawn 45 released --modes pipelined --depths 2,3,4 --seconds 1 --draw; pack
    left=$(( end - SECONDS ))
    if [ "$left" -gt 70 ]; then
        step "trtssd bench fp16, synthetic 1080p (${left} s left)"
        run "$left" python3 -m trtssd bench --backend torch --device cuda --precision fp16 \
            --modes gpu,pipelined,multi --depths 2,3,4 --seconds 1 --no-chart --json "$OUT/r6_fp16.json"
    fi
    OUT=$SAVED_OUT; pack
fi
# ---- r6b: py-spy stacks (idle samples included, so waits show where they are) of every thread
# of pipelined d4 undrawn and drawn (synthetic 1080p; py-spy slows the run: stacks, not rates)
if [ "$phase" = r6b ]; then
    B="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --no-chart"
    SPY=.device-carry/tools/py-spy
    for m in "pipelined --depths 4" "pipelined --depths 4 --draw"; do
        tag=$(echo "$m" | tr -d ' -' | sed 's/pipelineddepths/p/')
        step "py-spy --idle, every thread, $m"
        run 70 $SPY record -r 250 --idle -f raw --threads -o "$OUT/spy_$tag.txt" -- \
            $B --modes $m --seconds 3 --json /tmp/spy_$tag.json
    done
    gzip -f "$OUT"/spy_*.txt
fi
# ---- r7 (round 7, one call of ~450 s): drawing laid out on the device (this tree) against the
# host layout it replaces ("hostdraw", the code of 3d3e02c), drawn, with this tree's undrawn rows
# in the same repetition: undrawn, drawn, drawn hostdraw, twice, alternating. Every JSON goes
# into $OUT/r7.tgz. Stage:
#   mkdir -p .device-carry/variants/hostdraw && git archive 3d3e02c trtssd | tar -x -C .device-carry/variants/hostdraw
if [ "$phase" = r7 ]; then
    R=/tmp/r7; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r7.tgz" -C "$R" .; }
    step "GPU tests: the device layout, the slots' drawing, the rasteriser, the pipelines"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider -n 4 --dist loadfile \
        tests/io/test_draw_device.py tests/io/test_draw_slot_host_logic.py tests/io/test_draw_gpu.py \
        tests/pipeline/test_pipeline_gpu.py tests/postprocess/test_postprocess_gpu.py
    sanitized "layout_detections and draw_prims_counted on the GPU" 120 \
        tests/io/test_draw_device.py tests/io/test_draw_slot_host_logic.py -k "on_a_gpu"
    D="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --no-chart"
    A="--modes gpu,pipelined --depths 2,3,4 --seconds 1"
    for r in 1 2; do
        step "repetition $r: undrawn, this tree"
        run 60 $D $A --json "$OUT/r7_undrawn_now_$r.json"; pack
        step "repetition $r: drawn, this tree"
        run 60 $D $A --draw --json "$OUT/r7_drawn_now_$r.json"; pack
        step "repetition $r: drawn, hostdraw"
        (cd .device-carry/variants/hostdraw && PYTHONPATH=/tmp/site:$PWD run 60 $D $A --draw \
            --json "$OUT/r7_drawn_hostdraw_$r.json"); pack
    done
    OUT=$SAVED_OUT; pack
fi
# ---- r7b (round 7's closing call, ~560 s): fp16 undrawn, then the GPU-bearing test folders
# with what is left. JSON into $OUT/r7b.tgz.
if [ "$phase" = r7b ]; then
    R=/tmp/r7b; mkdir -p "$R"
    step "fp16 synthetic 1080p"
    run 90 python3 -m trtssd bench --backend torch --device cuda --no-chart --seconds 1 \
        --precision fp16 --modes pipelined,multi --depths 2,3,4 --json "$R/r7b_fp16.json"
    tar czf "$OUT/r7b.tgz" -C "$R" .
    gpu_folders 560
fi
# ---- r7c (round 7b, one call of ~400 s): one thread submitting and completing (this tree)
# side by side with the driver thread it replaces ("driver", the code of 65c0292), undrawn:
# synthetic pipelined d2-d4 and multi x8, then the H.264 clip with NVDEC (pipelined d2, multi
# x8), twice each, alternating. JSON into $OUT/r7c.tgz. Stage:
#   mkdir -p .device-carry/variants/driver && git archive 65c0292 trtssd | tar -x -C .device-carry/variants/driver
if [ "$phase" = r7c ]; then
    R=/tmp/r7c; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r7c.tgz" -C "$R" .; }
    side_by_side synthetic 50 driver --modes pipelined,multi --depths 2,3,4 --seconds 1; pack
    side_by_side nvdec 70 driver --modes pipelined,multi --depths 2 --source "$PWD/$CLIP" \
        --decode gpu --seconds 1; pack
    OUT=$SAVED_OUT; pack
fi
# ---- r7d (~200 s): the final tree's pipelined rows undrawn and drawn, twice, alternating (the
# --draw target on the one-thread schedule). JSON into $OUT/r7d.tgz.
if [ "$phase" = r7d ]; then
    R=/tmp/r7d; mkdir -p "$R"
    D="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --no-chart"
    for r in 1 2; do
        step "repetition $r: undrawn, then drawn"
        run 80 $D --modes pipelined --depths 2,3,4 --seconds 1 --json "$R/r7d_undrawn_$r.json"
        run 80 $D --modes pipelined --depths 2,3,4 --seconds 1 --draw --json "$R/r7d_drawn_$r.json"
        tar czf "$OUT/r7d.tgz" -C "$R" .
    done
fi
# ---- r8 (round 8, one call of ~560 s): the next batch staged on the oldest busy slot (this
# tree) beside the tree before it ("unstaged", the code of 708ba03): synthetic pipelined d2-d4
# and multi x8 undrawn, then pipelined drawn, twice each, alternating; the H.264 clip with
# NVDEC once each; then the GPU tests of what changed and compute-sanitizer on the staged
# upload and the slot's drawing. JSON into $OUT/r8.tgz. Stage:
#   mkdir -p .device-carry/variants/unstaged && git archive 708ba03 trtssd | tar -x -C .device-carry/variants/unstaged
# nvdec_rows REPETITION: the H.264 clip with NVDEC, pipelined d2 and multi x8, this tree then
# the unstaged one (the clip's path made absolute before the variant's cd)
nvdec_rows() {
    local v dir clip=$PWD/$CLIP
    for v in now unstaged; do
        dir=$PWD; [ "$v" != now ] && dir=$PWD/.device-carry/variants/$v
        step "repetition $1, variant $v: the H.264 clip with NVDEC"
        (cd "$dir" && PYTHONPATH=/tmp/site:$dir run 70 python3 -m trtssd bench --backend torch \
            --device cuda --precision fp32 --no-chart --modes pipelined,multi --depths 2 \
            --source "$clip" --decode gpu --seconds 1 --json "$R/r5_nvdec_${v}_$1.json")
    done
}
if [ "$phase" = r8 ]; then
    R=/tmp/r8; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r8.tgz" -C "$R" .; }
    side_by_side synthetic 60 unstaged --modes pipelined,multi --depths 2,3,4 --seconds 1; pack
    side_by_side drawn 45 unstaged --modes pipelined --depths 2,3,4 --seconds 1 --draw; pack
    nvdec_rows 1; pack
    OUT=$SAVED_OUT
    step "GPU tests: the staged upload, the slot's drawing, the pipelines"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider -n 4 --dist loadfile \
        tests/preprocess/test_preprocess_gpu.py tests/io/test_draw_slot_host_logic.py \
        tests/io/test_draw_device.py tests/pipeline/test_pipeline_gpu.py
    sanitized "the staged upload and the slot's drawing" 70 \
        tests/preprocess/test_preprocess_gpu.py tests/io/test_draw_slot_host_logic.py \
        -k "uploads_ahead or many_calls or on_a_gpu"
fi
# ---- r8b (~480 s): round 8b (the oldest slot staged before the result's host work, this
# tree) beside round 8 ("late", the code of c402bad), synthetic, twice, alternating; the H.264
# clip with NVDEC beside the unstaged tree (r8's cut row); the GPU-bearing test folders. JSON into $OUT/r8b.tgz. Stage (with r8's unstaged variant):
#   mkdir -p .device-carry/variants/late && git archive c402bad trtssd | tar -x -C .device-carry/variants/late
if [ "$phase" = r8b ]; then
    R=/tmp/r8b; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r8b.tgz" -C "$R" .; }
    side_by_side synthetic 55 late --modes pipelined,multi --depths 2,3,4 --seconds 1; pack
    nvdec_rows 1; pack
    OUT=$SAVED_OUT
    gpu_folders 480
fi
# ---- r9 (~540 s): round 9 (the rows the filter reads gathered by a kernel, this tree) beside
# the code before it ("whole", 167535f), fp32 synthetic twice, alternating, then fp16; first the
# link's rates and the upload of 16 frames both ways (bench_pcie, which also compares the two
# preprocessors' outputs), and the gather's GPU tests. JSON into $OUT/r9.tgz. Stage:
#   mkdir -p .device-carry/variants/whole && git archive 167535f trtssd | tar -x -C .device-carry/variants/whole
if [ "$phase" = r9 ]; then
    R=/tmp/r9; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r9.tgz" -C "$R" .; }
    pcie; pack
    step "GPU tests: the gathered rows against whole uploads, the slot's drawing"
    run 90 python3 -m pytest -q -rs -p no:cacheprovider tests/preprocess/test_preprocess_gpu.py \
        tests/io/test_draw_slot_host_logic.py -k "gathered or uploads_ahead or pinned or on_a_gpu"
    side_by_side synthetic 60 whole --modes gpu,pipelined,multi --depths 2,3,4 --seconds 1; pack
    side_by_side fp16 50 whole --modes pipelined,multi --depths 2 --seconds 1 --precision fp16; pack
    OUT=$SAVED_OUT
fi
# ---- r9b (~420 s): round 9b (gather_rows on 8 blocks, this tree) beside whole uploads
# ("whole", 167535f) and beside this tree with 24 blocks ("b24"), synthetic fp32 twice,
# alternating, then fp16 multi once; bench_pcie first. JSON into $OUT/r9b.tgz. Stage (with r9's):
#   mkdir -p .device-carry/variants/b24 && git archive HEAD trtssd | tar -x -C .device-carry/variants/b24
#   sed -i 's/^GATHER_BLOCKS = 8 /GATHER_BLOCKS = 24/' .device-carry/variants/b24/trtssd/preprocess/plan.py
if [ "$phase" = r9b ]; then
    R=/tmp/r9b; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r9b.tgz" -C "$R" .; }
    pcie; pack
    step "GPU tests: the gathered rows against whole uploads"
    run 60 python3 -m pytest -q -rs -p no:cacheprovider tests/preprocess/test_preprocess_gpu.py -k gathered
    side_by_side synthetic 50 "whole b24" --modes pipelined,multi --depths 2,4 --seconds 1; pack
    for v in now whole; do
        dir=$PWD; [ "$v" != now ] && dir=$PWD/.device-carry/variants/$v
        step "variant $v: fp16 multi"
        (cd "$dir" && PYTHONPATH=/tmp/site:$dir run 45 python3 -m trtssd bench --backend torch \
            --device cuda --precision fp16 --no-chart --modes multi --seconds 1 \
            --json "$R/r5_fp16_${v}_1.json")
    done; pack
    OUT=$SAVED_OUT
fi
# ---- r9c (~420 s): round 9b's second repetition of multi (fp32 and fp16), with the gpu mode and
# pipelined d3, beside whole uploads; compute-sanitizer on the gather's tests. JSON into
# $OUT/r9c.tgz. Stage as r9 ("whole").
if [ "$phase" = r9c ]; then
    R=/tmp/r9c; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r9c.tgz" -C "$R" .; }
    side_by_side synthetic 60 whole --modes gpu,pipelined,multi --depths 3 --seconds 1; pack
    side_by_side fp16 50 whole --modes multi --seconds 1 --precision fp16; pack
    OUT=$SAVED_OUT
    sanitized "the gathered rows and the staged upload" 60 tests/preprocess/test_preprocess_gpu.py \
        -k "gathered or uploads_ahead"
fi
# ---- r11 (~480 s): round 11 (a batch's results made in one go, this tree) beside "before"
# (b704830), fp32 (gpu, pipelined d3, multi) and fp16 (pipelined d2, multi), twice each,
# alternating; first the GPU tests of the postprocessing, the pipelines and the detector.
# JSON into $OUT/r11.tgz. Stage:
#   mkdir -p .device-carry/variants/before && git archive b704830 trtssd | tar -x -C .device-carry/variants/before
if [ "$phase" = r11 ]; then
    R=/tmp/r11; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r11.tgz" -C "$R" .; }
    step "GPU tests: postprocessing, pipelines, the detector"
    run 120 python3 -m pytest -q -rs -p no:cacheprovider -n 8 --dist loadfile tests/postprocess \
        tests/pipeline/test_pipeline_gpu.py tests/test_detector.py
    side_by_side synthetic 50 before --modes gpu,pipelined,multi --depths 3 --seconds 1; pack
    side_by_side fp16 45 before --modes pipelined,multi --depths 2 --seconds 1 --precision fp16; pack
    OUT=$SAVED_OUT
fi
# ---- r11b (~200 s): round 11's fp16 multi x8 again beside "before" (r11's fp16 calls of
# repetition 1 hit their 45 s limit), twice, alternating. JSON into $OUT/r11b.tgz. Stage as r11.
if [ "$phase" = r11b ]; then
    R=/tmp/r11b; mkdir -p "$R"; SAVED_OUT=$OUT; OUT=$R
    pack() { tar czf "$SAVED_OUT/r11b.tgz" -C "$R" .; }
    side_by_side fp16 70 before --modes multi --seconds 1 --precision fp16; pack
    OUT=$SAVED_OUT
fi
# ---- r12k (~250 s): the GPU tests of the gather and the floor benchmark, compute-sanitizer on
# the gather's, then the preprocessing kernel's floor (bench_kernel_floor, by events and under
# Nsight Compute, batch 1 and 8) and its full Nsight Compute sections. Text into $OUT.
# r12f (~60 s): only the floor benchmark's GPU test and the floor (events, Nsight Compute)
if [ "$phase" = r12k ]; then
    step "GPU tests: preprocessing, the floor benchmark, the pipelines"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider -n 8 --dist loadfile tests/preprocess \
        tests/gpu/test_bench_kernel_floor.py tests/pipeline/test_pipeline_gpu.py
    sanitized "the gathered rows and the staged upload" 60 tests/preprocess/test_preprocess_gpu.py \
        -k "gathered or uploads_ahead"
fi
if [ "$phase" = r12f ]; then
    step "GPU tests: the floor benchmark"
    run 60 python3 -m pytest -q -rs -p no:cacheprovider tests/gpu/test_bench_kernel_floor.py
fi
if [ "$phase" = r12k ] || [ "$phase" = r12f ]; then
    step "the kernel's floor by events"
    run 60 python3 -m benchmarks.bench_kernel_floor --json "$OUT/floor.json"
    for b in 1 8; do
        step "the kernel's floor under Nsight Compute, batch $b (per kernel: every launch of it)"
        floor_ncu $b > "$OUT/ncu_floor_b$b.txt" 2>&1
        grep -E "floor_|preprocess_u8|gpu__time|dram__bytes" "$OUT/ncu_floor_b$b.txt" | head -40
        [ "$phase" = r12f ] && continue
        step "the kernel's Nsight Compute sections, batch $b"
        run 90 ncu --clock-control none --kernel-name preprocess_u8 --launch-skip 20 --launch-count 1 \
            --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
            --section Occupancy --section LaunchStats --section SchedulerStats \
            python3 -m benchmarks.bench_preprocess --sizes 1080p --batches $b --dtypes float32 \
            --quick --no-torch --no-opencv > "$OUT/ncu_sections_b$b.txt" 2>&1
        grep -E "Duration|Throughput|Stall|Occupancy|Warp Cycles|Eligible|Issued" "$OUT/ncu_sections_b$b.txt" | head -30
    done
fi
# ---- r13 (~300 s): multi x8 with two and three rounds in flight (--multi-depth 2 / 3), this
# tree, alternating: fp16 twice, fp32 once. JSON into $OUT/r13.tgz. r13b (~200 s): fp32 and
# fp16 once more each.
if [ "$phase" = r13 ] || [ "$phase" = r13b ]; then
    R=/tmp/r13; mkdir -p "$R"
    reps="fp16 1|fp16 2|fp32 1"; [ "$phase" = r13b ] && reps="fp32 2|fp16 3"
    IFS='|' read -ra reps <<< "$reps"
    for p in "${reps[@]}"; do
        for d in 2 3; do
            step "multi x8 ${p% *} --multi-depth $d, repetition ${p#* }"
            run 65 python3 -m trtssd bench --backend torch --device cuda --precision ${p% *} \
                --no-chart --modes multi --multi-depth $d --seconds 1 \
                --json "$R/r13_${p% *}_d${d}_${p#* }.json"
        done
        tar czf "$OUT/r13.tgz" -C "$R" .
    done
fi
# ---- r14 (~300 s): what multi x8's NVDEC frames wait for (benchmarks/bench_nvdec.py on the
# carried clip, every case, x1 and x8, twice), beside multi x8 on the clip with GPU decode,
# twice; first the GPU tests of the probe, the NVDEC source and the floor benchmark.
# JSON into $OUT. Carry the clip and the test clips (header).
if [ "$phase" = r14 ]; then
    step "GPU tests: the NVDEC probe, the NVDEC source, the floor benchmark"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider tests/io/test_bench_nvdec.py \
        tests/io/test_nvdec.py tests/gpu/test_bench_kernel_floor.py
    step "NVDEC probe: threads, beside Python, beside the network, processes, ThreadedDecoder"
    run 150 python3 -m benchmarks.bench_nvdec --clip "$CLIP" --sessions 1 8 --reps 2 \
        --json "$OUT/nvdec_probe.json"
    for r in 1 2; do
        step "multi x8 on the clip with GPU decode, repetition $r"
        run 80 python3 -m trtssd bench --backend torch --device cuda --precision fp32 \
            --no-chart --modes multi --source "$CLIP" --decode gpu --seconds 1 \
            --json "$OUT/r14_multi_nvdec_$r.json"
    done
fi
# ---- r15 (~200 s): can the decoders run in processes of their own beside the network?
# bench_nvdec.py's threads, processes and ipc cases, alone and beside the batch-8 network,
# x1 and x8, twice; first the probe's GPU test.
if [ "$phase" = r15 ]; then
    step "GPU test: the NVDEC probe's cases (ipc too)"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider tests/io/test_bench_nvdec.py
    step "NVDEC probe: threads, processes, ipc; alone and beside the network"
    run 240 python3 -m benchmarks.bench_nvdec --clip "$CLIP" --sessions 1 8 --reps 2 \
        --cases threads threads+network processes processes+network ipc ipc+network \
        --json "$OUT/nvdec_probe_r15.json"
fi
# ---- r16 (~300 s): what multi x8's NVDEC decoders wait for in this process: the probe's
# decoders on a stream of the lowest and of the highest priority beside the network; multi x8
# on the clip with GPU decode at the interpreter's default switch interval (5 ms), 0.5 ms and
# 20 ms, twice, alternating; then py-spy's samples of the GIL's holder (--gil) and of every
# thread of one more such run. Carry .device-carry/tools/py-spy (the py-spy wheel's binary).
if [ "$phase" = r16 ]; then
    step "GPU test: the NVDEC probe (the priority readers too)"
    run 150 python3 -m pytest -q -rs -p no:cacheprovider tests/io/test_bench_nvdec.py
    step "NVDEC probe: threads, beside the network, own streams of the lowest and highest priority"
    run 150 python3 -m benchmarks.bench_nvdec --clip "$CLIP" --sessions 8 --reps 2 \
        --cases threads threads+network own+network own-high+network \
        --json "$OUT/nvdec_probe_r16.json"
    ARGS="bench --backend torch --device cuda --precision fp32 --no-chart --modes multi --source $CLIP --decode gpu --seconds 2"
    for r in 1 2; do
        for si in default 0.0005 0.02; do
            step "multi x8 on the clip with GPU decode, switch interval $si, repetition $r"
            if [ $si = default ]; then
                run 80 python3 -m trtssd $ARGS --json "$OUT/r16_multi_${si}_$r.json"
            else
                run 80 python3 -c "import sys; sys.setswitchinterval($si); from trtssd.commands.cli import main; sys.exit(main(sys.argv[1:]))" \
                    $ARGS --json "$OUT/r16_multi_${si}_$r.json"
            fi
        done
    done
    SPY=.device-carry/tools/py-spy
    step "py-spy --gil (the GIL's holder), multi x8 on the clip with GPU decode"
    run 90 $SPY record -r 200 -f raw --threads --gil -o "$OUT/spy_gil_multi_nvdec.txt" -- \
        python3 -m trtssd $ARGS --json "$OUT/r16_spy_gil.json"
    step "py-spy (every running thread), multi x8 on the clip with GPU decode"
    run 90 $SPY record -r 200 -f raw --threads -o "$OUT/spy_all_multi_nvdec.txt" -- \
        python3 -m trtssd $ARGS --json "$OUT/r16_spy_all.json"
fi
# ---- r16b (~250 s): r16's py-spy part (py-spy's samples of the GIL's holder, twice, and of
# every running thread), multi x8 on the clip with GPU decode three times at depth 2 and twice
# at depth 3. Carry .device-carry/tools/py-spy.
if [ "$phase" = r16b ]; then
    ARGS="bench --backend torch --device cuda --precision fp32 --no-chart --modes multi --source $CLIP --decode gpu --seconds 1.5"
    SPY=.device-carry/tools/py-spy
    for r in 1 2; do
        step "py-spy --gil (the GIL's holder), multi x8 on the clip with GPU decode, $r"
        run 90 $SPY record -r 200 -f raw --threads --gil -o "$OUT/spy_gil_multi_nvdec_$r.txt" -- \
            python3 -m trtssd $ARGS --json "$OUT/r16b_spy_gil_$r.json"
    done
    step "py-spy (every running thread), multi x8 on the clip with GPU decode"
    run 90 $SPY record -r 200 -f raw --threads -o "$OUT/spy_all_multi_nvdec.txt" -- \
        python3 -m trtssd $ARGS --json "$OUT/r16b_spy_all.json"
    for r in 1 2 3; do
        for d in 2 3; do
            [ $d = 3 ] && [ $r = 3 ] && continue
            step "multi x8 on the clip with GPU decode, depth $d, repetition $r"
            run 80 python3 -m trtssd $ARGS --multi-depth $d --json "$OUT/r16b_multi_d${d}_$r.json"
        done
    done
fi
# ---- r9-check (~200 s): the GPU tests of the preprocessing, the pipelines and the slot's drawing
if [ "$phase" = r9-check ]; then
    step "GPU tests: preprocessing, pipelines, the slot's drawing"
    run 200 python3 -m pytest -q -rs -p no:cacheprovider -n 8 --dist loadfile tests/preprocess \
        tests/pipeline/test_pipeline_gpu.py tests/io/test_draw_slot_host_logic.py tests/test_detector.py
fi
# ---- diag: where the host time of the GPU modes goes (the round's starting code side by side,
# py-spy stacks of every thread; py-spy at 400 Hz slows the run several times: stacks, not rates); stage .device-carry/old with
#   git archive 19475d8^ trtssd kernels | tar -x -C .device-carry/old
# and .device-carry/tools/py-spy (the py-spy wheel's binary) -----------------------------------
if [ "$phase" = diag ]; then
    B="python3 -m trtssd bench --backend torch --device cuda --precision fp32 --seconds 2 --no-chart"
    step "one after the other: today's code and the code of 19475d8^ (the round's start)"
    run 120 $B --modes gpu,pipelined,multi --depths 2,4 --json "$OUT/diag_now.json"
    if [ -d .device-carry/old/trtssd ]; then
        (cd .device-carry/old && PYTHONPATH=/tmp/site:$PWD run 120 $B --modes gpu,pipelined,multi \
            --depths 2,4 --json "$OUT/diag_old.json")
    fi
    SPY=.device-carry/tools/py-spy
    for m in "gpu" "pipelined --depths 4" "multi"; do
        tag=${m%% *}
        step "py-spy, every thread, $m (synthetic 1080p)"
        run 60 $SPY record -r 400 -f raw --threads -o "$OUT/spy_$tag.txt" -- \
            $B --modes $m --seconds 3 --json "$OUT/spy_$tag.json"
    done
    step "py-spy, multi x8 on the clip with GPU decode"
    run 90 $SPY record -r 400 -f raw --threads -o "$OUT/spy_multi_nvdec.txt" -- \
        $B --modes multi --source "$CLIP" --decode gpu --seconds 3 --json "$OUT/spy_multi_nvdec.json"
fi
# ---- end diag -----------------------------------------------------------------------------------
step "done"
