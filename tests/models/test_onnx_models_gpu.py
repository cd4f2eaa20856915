"""The pytorch-ssd mb1-ssd (random weights) on the GPU: the GPU postprocessing against the
NumPy one on the same outputs, the torch CUDA backend against ONNX Runtime, and every mode.
Skips without a GPU.

Tolerances. GpuPostprocessor vs postprocess_cpu on the same outputs: the same detections;
boxes to float32 rounding of the pixel mapping (1e-3 px). The torch backend on CUDA uses TF32
convolutions (~5e-4 relative per layer): softmax scores to 0.01, corners (0..1) to 0.01. Across
modes the network inputs differ by up to a grey level (CUDA vs OpenCV resize), and this random
network keeps hundreds of overlapping boxes with near-equal scores, so a box kept in one mode
may be suppressed in another by a same-class neighbour: every detection scoring >= 0.6 must
have a twin in the other mode of the same class, overlapping it (IoU >= 0.45: the box kept
instead, or itself) and within 0.1 in score, both ways.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

import pytorch_ssd_net as P  # noqa: E402
from support.boxes import iou  # noqa: E402
from trtssd.models.resolve import load_spec, onnx_for  # noqa: E402
from trtssd.postprocess import postprocess_cpu  # noqa: E402
from trtssd.core.geometry import FrameGeometry  # noqa: E402

NAMES = ("astronaut", "chelsea", "coffee")


@pytest.fixture(scope="module")
def mb1(tmp_path_factory, cache):
    d = tmp_path_factory.mktemp("mb1g")
    net = P.build_mb1_ssd(torch)
    return P.export_onnx(torch, net, str(d / "ssd-mobilenet.onnx"), dynamic_batch=True)


@pytest.fixture(scope="module")
def pictures():
    skdata = pytest.importorskip("skimage.data")
    return [np.ascontiguousarray(getattr(skdata, n)()[..., :3]) for n in NAMES]


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_gpu_postprocess_matches_numpy_on_mb1(cuda_context, mb1, pictures, batch, threshold):
    from trtssd.gpu.cuda import DeviceArray
    from trtssd.postprocess import GpuPostprocessor
    spec = load_spec(onnx_for(mb1))
    sess = ort.InferenceSession(mb1, providers=["CPUExecutionProvider"])
    x = np.stack([P.preprocess(p) for p in pictures])[:batch]
    scores, boxes = sess.run(["scores", "boxes"], {"input_0": x})
    geos = [FrameGeometry(p.shape[1], p.shape[0], 300.0 / p.shape[1], 300.0 / p.shape[0])
            for p in pictures[:batch]]
    cpu = postprocess_cpu(boxes, scores, spec, geos, threshold, max_detections=100)
    with GpuPostprocessor(spec, max_batch=3, score_threshold=threshold,
                          max_detections=100) as post, \
            DeviceArray(boxes.shape, np.float32) as b, DeviceArray(scores.shape, np.float32) as s:
        b.copy_from_host(np.ascontiguousarray(boxes))
        s.copy_from_host(np.ascontiguousarray(scores))
        for _ in range(2):          # twice: the per-frame tile counters are reset each run
            post._out_host.fill(np.nan)
            post.enqueue(b, s, batch)
            gpu = post.results(geos)
            for f in range(batch):
                assert gpu[f].class_ids.tolist() == cpu[f].class_ids.tolist()
                np.testing.assert_array_equal(gpu[f].scores, cpu[f].scores)
                np.testing.assert_allclose(gpu[f].boxes, cpu[f].boxes, rtol=0, atol=1e-3)
    assert sum(len(d) for d in cpu) > 3


@pytest.mark.gpu
def test_torch_cuda_backend_on_mb1(cuda_context, mb1, pictures):
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    from trtssd.backends import create_backend
    x = np.stack([P.preprocess(p) for p in pictures])
    sess = ort.InferenceSession(mb1, providers=["CPUExecutionProvider"])
    rs, rb = sess.run(["scores", "boxes"], {"input_0": x})
    for graph in (True, False):
        with create_backend("torch", model=mb1, device="cuda", max_batch=3,
                            cuda_graph=graph) as be:
            b, s = be.infer(x)
        np.testing.assert_allclose(s, rs, rtol=0, atol=0.01)
        np.testing.assert_allclose(b, rb, rtol=0, atol=0.01)


def _twins(got, ref, what):
    for a, b in ((got, ref), (ref, got)):
        for d in a:
            if d["score"] < 0.6:
                continue
            assert any(e["class_id"] == d["class_id"] and abs(e["score"] - d["score"]) <= 0.1
                       and iou(e["box"], d["box"]) >= 0.45 for e in b), (what, d)


@pytest.mark.gpu
def test_every_mode_on_mb1(cuda_context, mb1, pictures, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    import json
    from trtssd.commands.cli import main
    img = str(tmp_path / "astronaut.png")
    cv2.imwrite(img, pictures[0][..., ::-1])
    results = {}
    for mode, extra in (("sync", []), ("async", []), ("gpu", []), ("pipelined", []),
                        ("pipelined", ["--batch", "2"]), ("multi", [])):
        out = str(tmp_path / ("%s%s.jsonl" % (mode, len(extra))))
        srcs = [img, img] if mode == "multi" else [img]
        rc = main(["detect"] + srcs + ["--model", mb1, "--backend", "torch", "--device", "cuda",
                                       "--mode", mode, "--loop", "4", "--threshold", "0.4",
                                       "-q", "--output", out] + extra)
        assert rc == 0, mode
        recs = [json.loads(line) for line in open(out)]
        assert len(recs) == 4 * len(srcs), mode
        results[(mode, len(extra))] = recs
    ref = results[("sync", 0)][0]["detections"]
    assert len(ref) > 3
    for key, recs in results.items():
        for r in recs:
            _twins(r["detections"], ref, key)
