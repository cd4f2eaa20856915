"""Host (Python) time of the GPU modes' per-frame work, with every driver call a no-op (CPU
only, no GPU): what trtssd's own code costs on top of pycuda's and the network's calls.

    python benchmarks/bench_host.py [--json out.json]

Cases (median us per call, samples of 100 calls):
- ``slot_submit_result``: one frame through ``GpuSlot.submit`` + ``result`` (preprocessing
  plan lookup and launch, the network's enqueue, the postprocessing's launches, reading 10
  kept boxes back into Detections with label names in frame pixels) for a 1080p pinned frame,
  the real model's spec, a backend whose enqueue does nothing.
- ``preprocess_nv12_b8_same`` / ``preprocess_nv12_b8_ring``: ``GpuPreprocessor.preprocess`` of
  8 device NV12 1080p frames, the same 8 each call (a plan-cache hit) or 8 of 56 buffers drawn
  at random (8 NVDEC sources with rings of 7: a new plan nearly every round).
- ``to_frame_10box``: the completion thread's mapping of one frame's 10 kept rows to frame
  pixels (``postprocess.cpu.to_frame``, a letterboxed 1080p frame).
- ``detections_b8_10box``: a batch's kept rows as Detections (``GpuPostprocessor.detections``:
  8 letterboxed 1080p frames of 10 rows each, label names), what multi x8 does per round.
- ``plan_key_torch_b8``: the preprocessor's plan-cache key of 8 torch tensors (``Planner.key``;
  CPU tensors, the same attribute reads as CUDA ones; without torch: not run).
- ``draw_host_1box`` / ``draw_host_20box``: the host part of drawing one 1080p frame on the GPU
  (GpuSlot's drawing): ``layout_detections`` then ``draw_gpu.expand`` into the kernel's
  primitives, for 1 and 20 labelled boxes (needs OpenCV).
The real model: $TRTSSD_MODEL, or ../shared/models/detect.tflite beside a checkout.
"""
import argparse
import contextlib
import json
import os
import platform
import random
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks._overhead import median_us_per_call, noop_driver, print_us  # noqa: E402

KEPT = 10


class _Context(object):
    def enqueue(self, stream=None):
        pass

    def close(self):
        pass


class _Backend(object):
    """The backend contract's shapes for the SSD-MobileNet, with nothing to run."""
    device, name, input_dtype, max_batch = "cuda", "no-op", np.float32, 8

    def __init__(self, spec):
        self.spec = spec

    def input_shape(self, n):
        return (n, 3, self.spec.input_height, self.spec.input_width)

    def output_shapes(self, n):
        return (n, self.spec.num_anchors, 4), (n, self.spec.num_anchors,
                                               int(self.spec.num_classes))

    def create_context(self, *bindings):
        return _Context()

    def check_batch(self, n):
        pass


def kept_rows(spec, rng):
    """KEPT result rows as the postprocessing kernels write them: boxes (ymin, xmin, ymax,
    xmax, normalised), score, class."""
    from trtssd.postprocess.gpu import _ROW
    rows = np.zeros((KEPT, _ROW), np.float32)
    rows[:, :2] = rng.uniform(0, 0.8, (KEPT, 2))
    rows[:, 2:4] = rows[:, :2] + 0.1
    rows[:, 4] = rng.uniform(0.3, 1, KEPT)
    rows[:, 5] = rng.integers(1, spec.num_classes, KEPT)
    return rows


def noop_layer(spec, max_batch):
    """A GpuLayer over the no-op backend without a CUDA context (the driver is a no-op); every
    slot it makes has kept_rows in each frame's result memory, as if its kernels had run."""
    from trtssd.pipeline import slots as S
    from trtssd.postprocess.gpu import _HEADER, _ROW
    layer = S.GpuLayer.__new__(S.GpuLayer)
    layer._init_layer(_Backend(spec), 0.3, None, ["c%d" % i for i in range(spec.num_classes)],
                      max_batch, "BGR")
    layer.max_frame_shape = (1080, 1920, 3)
    layer.draw_style = None
    layer.context = None
    layer.activate = S._NoContext
    rows = kept_rows(spec, np.random.default_rng(0))
    make = layer.make_slot

    def make_slot():
        slot = make()
        out = slot.post._out_host
        out[:] = 0
        out[:, 0], out[:, 1] = KEPT, 50
        out[:, _HEADER:_HEADER + KEPT * _ROW] = rows.reshape(-1)
        return slot
    layer.make_slot = make_slot
    return layer


def slot_case(spec):
    """(call, slot) for one frame through a GpuSlot, its result rows filled as the kernels
    would fill them."""
    from trtssd.gpu.cuda import pinned_empty
    from trtssd.io.sources import Frame
    slot = noop_layer(spec, 1).make_slot()
    frame = Frame(0, pinned_empty((1080, 1920, 3), np.uint8), "s0")

    def call():
        slot.submit([frame])
        return slot.result()
    return call, slot


def preprocess_cases():
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.preprocess import GpuPreprocessor, PreprocessOptions
    pre = GpuPreprocessor(PreprocessOptions(input_format="NV12"), max_batch=8,
                          max_frame_shape=(1080, 1920))
    bufs = [[DeviceArray((1620, 1920), np.uint8) for _ in range(7)] for _ in range(8)]
    out = DeviceArray((8, 3, 300, 300), np.float32)
    rnd = random.Random(0)
    combos = [[b[rnd.randrange(7)] for b in bufs] for _ in range(997)]
    same = [b[0] for b in bufs]
    turn = [0]

    def ring():
        turn[0] += 1
        pre.preprocess(combos[turn[0] % len(combos)], out=out)
    return [("preprocess_nv12_b8_same", lambda: pre.preprocess(same, out=out)),
            ("preprocess_nv12_b8_ring", ring)]


def result_cases(spec):
    """The completion thread's box mapping of one frame (10 kept rows of a kernel's result, a
    1080p frame letterboxed), and the plan key of a batch of 8 torch tensors (CPU tensors:
    the key reads the same attributes of CUDA ones; skipped without torch)."""
    from trtssd.core.geometry import FrameGeometry
    from trtssd.postprocess.cpu import to_frame
    from trtssd.preprocess import PreprocessOptions
    from trtssd.preprocess.plan import Planner
    rng = np.random.default_rng(0)
    rows = rng.uniform(-0.05, 1.05, (KEPT, 8)).astype(np.float32)
    geo = FrameGeometry.compute(1920, 1080, PreprocessOptions(letterbox=True))
    cases = [("to_frame_10box", lambda: to_frame(rows[:, :4], geo, spec))]
    try:
        import torch
    except ImportError:
        return cases
    tensors = [torch.zeros((1080, 1920, 3), dtype=torch.uint8) for _ in range(8)]
    cases.append(("plan_key_torch_b8", lambda: Planner.key(tensors)))
    return cases


@contextlib.contextmanager
def batch_detections_case(spec):
    """GpuPostprocessor.detections of 8 frames' kept rows (10 each, letterboxed 1080p frames,
    the COCO label names): one multi x8 round's conversion (no-op driver)."""
    from trtssd.core.geometry import FrameGeometry
    from trtssd.postprocess import GpuPostprocessor
    from trtssd.preprocess import PreprocessOptions
    rng = np.random.default_rng(1)
    rows = [kept_rows(spec, rng) for _ in range(8)]
    geo = FrameGeometry.compute(1920, 1080, PreprocessOptions(letterbox=True))
    labels = ["c%d" % i for i in range(spec.num_classes)]
    post = GpuPostprocessor(spec, max_batch=8)
    try:
        yield lambda: post.detections(rows, [geo] * 8, labels)
    finally:
        post.close()


def draw_cases():
    from trtssd.core.detections import Detections
    from trtssd.io.draw import layout_detections
    from trtssd.io.draw_gpu import atlas_for, expand
    labels = ["c%d" % i for i in range(91)]
    rng = np.random.default_rng(0)
    cases = []
    for n in (1, 20):
        xy = rng.uniform(0, 1500, (n, 2))
        det = Detections(np.concatenate([xy, xy + [200, 100]], 1), rng.uniform(0.3, 1, n),
                         rng.integers(1, 90, n))
        first = layout_detections((1080, 1920), det, labels)
        atlas = atlas_for(first.thickness, first.font_scale, first.text_thickness)

        def call(det=det, atlas=atlas):
            return expand(layout_detections((1080, 1920), det, labels), atlas)
        cases.append(("draw_host_%dbox" % n, call))
    return cases


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--samples", type=int, default=30, help="samples of 100 calls each")
    args = p.parse_args(argv)
    from trtssd.models.resolve import load_spec, onnx_for, resolve_model
    spec = load_spec(onnx_for(resolve_model(None)))
    res = {}
    with noop_driver():
        call, slot = slot_case(spec)
        res["slot_submit_result"] = median_us_per_call(call, args.samples, 500)
        slot.close()
        for name, fn in preprocess_cases():
            res[name] = median_us_per_call(fn, args.samples, 200)
        with batch_detections_case(spec) as fn:
            res["detections_b8_10box"] = median_us_per_call(fn, args.samples, 100)
    for name, fn in result_cases(spec) + draw_cases():
        res[name] = median_us_per_call(fn, args.samples, 100)
    print("host us per call, no-op driver, Python %s on %s" % (platform.python_version(),
                                                                platform.machine()))
    print_us(res, "call")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"host_us": res, "python": platform.python_version()}, f, indent=1)


if __name__ == "__main__":
    main()
