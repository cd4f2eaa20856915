"""On a GPU with the PyTorch backend: every mode (sync, async, gpu, pipelined at depth 2 and 3,
multi) gives the same detections for the same frames of a file; pinned and device memory
stay flat over repeated runs. Skips with the reason where there is no GPU.

Tolerances. ``sync`` and ``async`` run the very same code (OpenCV preprocessing on the host,
the same CUDA graph at batch 1, NumPy NMS) and must agree to float rounding. The GPU modes
preprocess with the CUDA kernel: its bilinear weights are float32, OpenCV's are 11-bit fixed
point, so network inputs differ by up to about one grey level (1/128 after normalisation).
Through the network that moves box corners by a fraction of a 300x300 input pixel, i.e. up
to ~1.6 frame pixels at 480x360 (scale 1.6 in x), and the scores of confident detections by
~0.01. Weak detections move more: on the H100 (2026-11-27, channels_last convolutions) a
0.37 'bottle' of the gpu mode was 0.336 in sync, 0.036 apart. So, as issue 3 sets it for the
float-vs-quantised comparison, every detection scoring >= 0.5 must have its twin (same class,
corners within 2 px, score within 0.05) in the other mode, both ways; GPU NMS must keep the
same boxes in the same classes.
"""
import os

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from trtssd.pipeline import PipelineOptions, run  # noqa: E402

SEQUENCE = ["astronaut", "chelsea", "coffee", "astronaut", "chelsea", "coffee", "astronaut"]
SIZE = (480, 360)
BOX_PX, SCORE, MIN_SCORE = 2.0, 0.05, 0.5


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    pytest.importorskip("skimage")
    from skimage import data
    path = str(tmp_path_factory.mktemp("gpu-video") / "pictures.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5, SIZE)
    assert w.isOpened()
    for name in SEQUENCE:
        im = np.ascontiguousarray(getattr(data, name)()[:, :, ::-1])
        w.write(cv2.resize(im, SIZE, interpolation=cv2.INTER_AREA))
    w.release()
    return path


class Keep(object):
    """Keeps (source, index, boxes, scores, classes) per frame, copied."""
    draws = False

    def __init__(self):
        self.got = []

    def write(self, frame, dets):
        self.got.append((frame.source_id, frame.index, np.array(dets.boxes, np.float64),
                         np.array(dets.scores, np.float64), np.array(dets.class_ids)))


def run_mode(video, backend, mode, depth=2, nsources=1):
    from trtssd.io.sources import VideoSource
    srcs = [VideoSource(video, source_id="s%d" % k) for k in range(nsources)]
    keep = Keep()
    try:
        stats = run(srcs if mode == "multi" else srcs[0], backend, keep,
                    PipelineOptions(mode=mode, depth=depth, source_timeout_ms=5000))
    finally:
        for s in srcs:
            s.close()
    return stats, keep.got


def assert_match(got, ref, what):
    assert [(g[0], g[1]) for g in got] == [(r[0], r[1]) for r in ref], what
    for g, r in zip(got, ref):
        for a, b in ((g, r), (r, g)):        # every confident detection of each has its twin
            for k in np.nonzero(a[3] >= MIN_SCORE)[0]:
                same = np.nonzero(b[4] == a[4][k])[0]
                near = [j for j in same if np.abs(b[2][j] - a[2][k]).max() <= BOX_PX and
                        abs(b[3][j] - a[3][k]) <= SCORE]
                assert near, ("%s frame %d: class %d at %s score %.3f has no match in %s"
                              % (what, g[1], a[4][k], a[2][k].round(1), a[3][k],
                                 list(zip(b[4], b[3].round(3)))))


def test_every_mode_same_detections(video, torch_backends):
    b1 = torch_backends(1)
    stats, ref = run_mode(video, b1, "sync")
    assert stats.frames == len(SEQUENCE) and stats.dropped == 0
    assert stats.stage_clock["inference"] == "cuda-event"
    assert [g[1] for g in ref] == list(range(len(SEQUENCE)))
    # the known pictures: person, cat, cup (COCO ids 1, 17, 47) with confidence
    for g, name in zip(ref, SEQUENCE):
        want = {"astronaut": 1, "chelsea": 17, "coffee": 47}[name]
        assert want in set(g[4][g[3] >= 0.5].tolist()), (name, g[4], g[3])

    st, got = run_mode(video, b1, "async")
    assert st.frames == len(SEQUENCE) and st.dropped == 0
    # the same code as sync, but its own execution context and CUDA graph, for which cuDNN
    # may pick other convolution algorithms (TF32 sums in another order): boxes agreed to
    # 0.02 px on the H100 (2026-11-27); a wrong frame or geometry moves them by pixels
    for g, r in zip(got, ref):
        assert np.array_equal(g[4], r[4]) and np.allclose(g[2], r[2], atol=0.1)

    for mode, depth in (("gpu", 1), ("pipelined", 2), ("pipelined", 3)):
        st, got = run_mode(video, b1, mode, depth)
        assert st.frames == len(SEQUENCE) and st.dropped == 0, (mode, depth)
        assert st.stage_clock.get("preprocess") == "cuda-event"
        assert_match(got, ref, "%s depth %d" % (mode, depth))

    b2 = torch_backends(2)
    st, got = run_mode(video, b2, "multi", nsources=2)
    assert st.frames == 2 * len(SEQUENCE) and st.dropped == 0
    assert len(got) == 2 * len(SEQUENCE)
    for k in range(2):          # per source, in frame order, each matching the sync run
        mine = [g for g in got if g[0] == "s%d" % k]
        assert [g[1] for g in mine] == list(range(len(SEQUENCE)))
        assert_match([("s0",) + g[1:] for g in mine], ref, "multi source %d" % k)


def test_repeated_runs_leave_gpu_memory_flat(video, torch_backends, cuda_context):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # free memory is the device's: other workers' tests move it by hundreds of MB (seen:
        # -470 MB under -n 8, and passing alone in the same call); run_on_device.sh runs it alone
        pytest.skip("measures the whole device's free memory: run it without pytest-xdist")
    import pycuda.driver as drv
    b1 = torch_backends(1)
    run_mode(video, b1, "pipelined", 3)     # first run: kernels compiled, caches filled
    run_mode(video, b1, "gpu")
    import torch
    torch.cuda.synchronize()
    torch.cuda.empty_cache()            # PyTorch's cache is not ours: measure without it
    free0 = drv.mem_get_info()[0]
    for _ in range(4):
        run_mode(video, b1, "pipelined", 3)
        run_mode(video, b1, "gpu")
        run_mode(video, b1, "sync")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free1 = drv.mem_get_info()[0]
    # each pipelined run allocates 3 slots of device buffers (~30 MB at 1080p-sized staging,
    # ~10 MB here) and pinned frames; were they not freed, 4 x 3 runs would lose > 50 MB. The
    # bound (32 MB) leaves room for PyTorch's allocator rounding and driver bookkeeping.
    assert free0 - free1 < 32 * 2 ** 20, "device memory fell by %d MB" % ((free0 - free1) >> 20)


def test_cli_detect_on_the_gpu(video, torch_backends, tflite_model, label_file, tmp_path):
    import json
    from trtssd.commands.cli import main
    for mode in ("gpu", "pipelined"):
        out = str(tmp_path / ("%s.jsonl" % mode))
        rc = main(["detect", video, "--model", tflite_model, "--labels", label_file,
                   "--backend", "torch", "--device", "cuda", "--mode", mode, "-q",
                   "--output", out])
        assert rc == 0
        recs = [json.loads(line) for line in open(out)]
        assert [r["frame"] for r in recs] == list(range(len(SEQUENCE)))
        for r, name in zip(recs, SEQUENCE):
            want = {"astronaut": "person", "chelsea": "cat", "coffee": "cup"}[name]
            assert want in {d["label"] for d in r["detections"] if d["score"] >= 0.5}, (mode, r)


def test_live_source_on_the_gpu_drops_and_counts(torch_backends):
    # a 1000 FPS synthetic camera is faster than a 2-slot pipeline with a sink that takes
    # 5 ms a frame: frames must be dropped and counted, never delivered out of order
    import time
    from trtssd.io.sources import SyntheticSource
    b1 = torch_backends(1)
    seen = []

    class Slow(object):
        draws = False

        def write(self, frame, dets):
            seen.append(frame.index)
            time.sleep(0.005)
    src = SyntheticSource(640, 480, frames=300, live=True, fps=1000)
    st = run(src, b1, Slow(), PipelineOptions(mode="pipelined", depth=2))
    assert seen == sorted(seen) and len(seen) == st.frames
    assert st.dropped > 0 and st.frames + st.dropped == 300


def _pictures():
    pytest.importorskip("skimage")
    from skimage import data
    return [cv2.resize(np.ascontiguousarray(getattr(data, n)()[:, :, ::-1]), SIZE,
                       interpolation=cv2.INTER_AREA) for n in SEQUENCE[:3]]


def test_synthetic_pinned_ring_frames_on_the_gpu(torch_backends):
    # synthetic frames live in pinned ring buffers from the CUDA layer and are uploaded in
    # place (no host copy); a buffer given back to the ring before its slot ran would show
    # another picture to the network. Every GPU mode must match sync on the same pictures
    # (sync reads the same ring through OpenCV on the host).
    from trtssd.io.sources import SyntheticSource
    pics = _pictures()
    n = 24

    def go(backend, mode, depth=2, nsources=1):
        srcs = [SyntheticSource(SIZE[0], SIZE[1], frames=n, images=pics, source_id="s%d" % k)
                for k in range(nsources)]
        keep = Keep()
        st = run(srcs if mode == "multi" else srcs[0], backend, keep,
                 PipelineOptions(mode=mode, depth=depth, source_timeout_ms=5000))
        assert all(s.ring_size == 0 for s in srcs)      # the rings were given back
        return st, keep.got

    b1 = torch_backends(1)
    st, ref = go(b1, "sync")
    assert st.frames == n
    for mode, depth in (("gpu", 1), ("pipelined", 2), ("pipelined", 4)):
        st, got = go(b1, mode, depth)
        assert st.frames == n and st.dropped == 0, (mode, depth)
        assert_match(got, ref, "ring %s depth %d" % (mode, depth))
    b3 = torch_backends(3)
    st, got = go(b3, "multi", 2, nsources=3)
    assert st.frames == 3 * n
    for k in range(3):
        mine = [g for g in got if g[0] == "s%d" % k]
        assert [g[1] for g in mine] == list(range(n))
        assert_match([("s0",) + g[1:] for g in mine], ref, "ring multi source %d" % k)


class KeepDrawn(object):
    """Keeps (picture, detections, annotated picture) per frame, copied."""
    draws = False

    def __init__(self):
        self.got = []

    def write(self, frame, dets):
        assert frame.annotated is not None and frame.annotated is not frame.image
        self.got.append((np.array(frame.image), dets,
                         np.array(frame.annotated)))


def test_gpu_modes_draw_what_opencv_draws(torch_backends):
    # read-only ring frames with --draw: the slots lay the boxes out on the device and draw
    # them into the device copy; each picture must be OpenCV's drawing of the detections the
    # sink got (boxes and tags exact, text as test_draw_gpu bounds it), the ring untouched
    import sys
    io_tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "io")
    if io_tests not in sys.path:
        sys.path.insert(0, io_tests)
    from test_draw_gpu import OPENCV5, atlas_for, expand, text_mask
    from trtssd.io.draw import draw_detections, layout_detections
    from trtssd.io.sources import SyntheticSource
    pics = _pictures()
    b1 = torch_backends(1)
    for mode, depth in (("gpu", 1), ("pipelined", 2), ("pipelined", 3)):
        src = SyntheticSource(SIZE[0], SIZE[1], frames=9, images=pics, source_id="s")
        keep = KeepDrawn()
        st = run(src, b1, keep, PipelineOptions(mode=mode, depth=depth, draw=True,
                                                source_timeout_ms=5000))
        assert st.frames == 9 and any("on the GPU" in n for n in st.notes), st.notes
        assert sum(len(d) for _, d, _ in keep.got) > 0
        for image, dets, annotated in keep.got:
            want = draw_detections(image.copy(), dets)
            layout = layout_detections(image.shape, dets)
            text = text_mask(image.shape, layout, expand(layout, atlas_for(layout)))
            np.testing.assert_array_equal(annotated[~text], want[~text])
            diff = np.abs(annotated[text].astype(int) - want[text])
            assert diff.size == 0 or (diff.max() <= 2 if OPENCV5 else diff.mean() <= 40)


def test_no_pycuda_object_is_freed_out_of_its_context(video, torch_backends):
    # "stream/event in out-of-thread context could not be cleaned up": a pycuda object
    # collected in a thread without the context. Every mode must free its objects under the
    # context, in the thread that made them, before run() returns.
    import gc
    import warnings
    b1, b2 = torch_backends(1), torch_backends(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for mode, depth in (("sync", 1), ("async", 1), ("gpu", 1), ("pipelined", 3)):
            run_mode(video, b1, mode, depth)
        run_mode(video, b2, "multi", 2, nsources=2)
        gc.collect()
    bad = [str(w.message) for w in caught if "context" in str(w.message)
           and "clean" in str(w.message)]
    assert bad == [], bad
