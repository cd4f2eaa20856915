"""Several GPUs on one host, with fake devices: worker processes forced onto the ONNX Runtime
CPU backend, each labelled with a GPU index. What is checked is what the real run relies on:
the sharding, every frame of every source once and in frame order in the parent's sinks, the
same detections as one process gives, and a worker's failure reported with its GPU and source
while the others stop cleanly. The GPU run itself (CUDA_VISIBLE_DEVICES per worker) is in
test_gpus_cuda below, skipped without a GPU."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import scale_fakes
from trtssd.core.errors import EnvironmentProblem, InputError
from trtssd.scale import gpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("onnxruntime") is None,
    reason="the fake devices run ONNX Runtime on the CPU (pip install onnxruntime)")


def bgr(name):
    pytest.importorskip("skimage")
    from skimage import data
    return np.ascontiguousarray(getattr(data, name)()[..., :3][..., ::-1])


def cpu_kwargs(model, labels):
    return dict(model=model, labels=labels, backend="onnxruntime", device="cpu")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_devices_and_shards():
    assert gpus.parse_devices("0,1", cpu=True) == [0, 1]
    assert gpus.parse_devices(" 2, 0,2 ", cpu=True) == [2, 0]
    assert gpus.parse_devices(1, cpu=True) == [1]
    assert gpus.parse_devices("all", cpu=True) == [0, 1]
    for bad in ("x", "", "0,-1", [True]):
        with pytest.raises(InputError, match="--gpus"):
            gpus.parse_devices(bad, cpu=True)
    found, why = gpus.visible_gpus()
    if not found:
        assert why
        with pytest.raises(EnvironmentProblem, match="no GPU"):
            gpus.parse_devices("0")
    else:
        with pytest.raises(InputError, match="no GPU %d" % len(found)):
            gpus.parse_devices(str(len(found)))
    plan = gpus.shard(list("abcde"), [3, 5])
    assert plan == [(3, [(0, "a"), (2, "c"), (4, "e")]), (5, [(1, "b"), (3, "d")])]
    assert gpus.shard(["a"], [0, 1, 2]) == [(0, [(0, "a")])]
    assert gpus.parse_counts("2,1,2", 4) == [1, 2] and gpus.parse_counts("all", 3) == [1, 2, 3]
    with pytest.raises(InputError, match="--gpus 0"):
        gpus.parse_counts("0", 2)


def test_every_frame_once_in_order_with_the_one_process_detections(tmp_path, tflite_model,
                                                                     label_file):
    import trtssd
    pictures = {"cat": bgr("chelsea"), "astronaut": bgr("astronaut"), "coffee": bgr("coffee")}
    counts = {"cat": 7, "astronaut": 5, "coffee": 6}
    sources = [scale_fakes.Opener(n, counts[n], image=pictures[n]) for n in counts]
    out = str(tmp_path / "dets.jsonl")
    with trtssd.Detector(devices=[0, 1], **cpu_kwargs(tflite_model, label_file)) as det:
        assert isinstance(det, trtssd.Detector) and det.devices == [0, 1]
        with pytest.raises(InputError, match="devices="):
            det(pictures["cat"])
        stats = det.run(sources, out)
    recs = read_jsonl(out)
    assert stats.frames == len(recs) == sum(counts.values())
    assert stats.mode == "gpus-x2"
    assert any(n.startswith("GPU 0: 2 sources in multi") for n in stats.notes)
    assert any(n.startswith("GPU 1: 1 source in sync") for n in stats.notes)
    by_source = {}
    for r in recs:
        by_source.setdefault(r["source"], []).append(r)
    assert sorted(by_source) == sorted(counts)
    with trtssd.Detector(**cpu_kwargs(tflite_model, label_file)) as one:
        from trtssd.io.sinks import detection_dicts
        for name, rs in by_source.items():
            assert [r["frame"] for r in rs] == list(range(counts[name]))   # once, in order
            want = detection_dicts(one(pictures[name]))
            assert want, "the one-process detector found nothing in %s" % name
            for r in rs:
                assert len(r["detections"]) == len(want)
                for got, exp in zip(r["detections"], want):
                    assert got["label"] == exp["label"] and got["class_id"] == exp["class_id"]
                    # the same network on the same CPU: only float summation order may differ
                    assert abs(got["score"] - exp["score"]) < 1e-4
                    assert np.allclose(got["box"], exp["box"], atol=0.05)


def test_a_drawing_sink_gets_the_pictures(tmp_path, tflite_model, label_file):
    pytest.importorskip("cv2")
    folder = tmp_path / "pics"
    sources = [scale_fakes.Opener("a", 2, seed=1), scale_fakes.Opener("b", 3, seed=2)]
    stats = gpus.run_on_gpus(sources, str(folder), devices=[0, 1],
                             **cpu_kwargs(tflite_model, label_file))
    assert stats.frames == 5
    names = sorted(os.listdir(str(folder)))
    assert names == ["a_000000.jpg", "a_000001.jpg", "b_000000.jpg", "b_000001.jpg",
                     "b_000002.jpg"]
    import cv2
    assert cv2.imread(str(folder / "b_000002.jpg")).shape == (120, 160, 3)


def test_a_failing_worker_is_reported_with_its_gpu_and_source_and_the_others_stop(
        tmp_path, tflite_model, label_file):
    out = str(tmp_path / "dets.jsonl")
    sources = [scale_fakes.Opener("endless", 10 ** 6, seed=1),
               scale_fakes.Opener("flaky-cam", 10 ** 6, seed=2, fail_after=3)]
    lines = []
    t0 = time.monotonic()
    with pytest.raises(Exception) as info:
        gpus.run_on_gpus(sources, out, devices=[4, 7], log=lines.append, grace_s=20.0,
                         **cpu_kwargs(tflite_model, label_file))
    took = time.monotonic() - t0
    msg = str(info.value)
    assert msg.startswith("GPU 7 ('flaky-cam'): ") and "unplugged" in msg, msg
    assert "terminated" not in msg            # GPU 4 stopped when asked
    assert info.value.gpu == 7 and info.value.sources == ["flaky-cam"]
    assert "SourceError" in info.value.details                 # the worker's traceback
    assert "GPU 7 failed; stopping the other GPUs" in lines
    assert took < 60, "the endless source's worker did not stop (%.0f s)" % took
    recs = read_jsonl(out)                 # what came before the failure is written, in order
    flaky = [r["frame"] for r in recs if r["source"] == "flaky-cam"]
    endless = [r["frame"] for r in recs if r["source"] == "endless"]
    assert flaky == list(range(len(flaky))) and len(flaky) <= 3
    assert endless == list(range(len(endless)))


def test_a_worker_that_dies_silently_or_cannot_open_its_source(tmp_path, tflite_model,
                                                                label_file):
    sources = [scale_fakes.Opener("ok", 10 ** 6, seed=1),
               scale_fakes.Opener("crasher", 100, seed=2, crash_after=2)]
    with pytest.raises(gpus.GpuWorkerError, match=r"GPU 1 \('crasher'\): its worker process "
                                                  r"ended with exit code 3"):
        gpus.run_on_gpus(sources, None, devices=[0, 1], log=lambda s: None,
                         **cpu_kwargs(tflite_model, label_file))
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match=r"GPU 1 \('%s'\): video file" % missing):
        gpus.run_on_gpus([scale_fakes.Opener("ok", 3), missing], None, devices=[0, 1],
                         log=lambda s: None, **cpu_kwargs(tflite_model, label_file))


def test_the_command_with_fake_devices(tmp_path, tflite_model, label_file):
    pytest.importorskip("cv2")
    import cv2
    pics = []
    for name in ("chelsea", "coffee", "astronaut"):
        p = str(tmp_path / (name + ".png"))
        cv2.imwrite(p, bgr(name))
        pics.append(p)
    out, stats = str(tmp_path / "dets.jsonl"), str(tmp_path / "stats.json")
    cmd = [sys.executable, "-m", "trtssd", "detect"] + pics + [
        "--loop", "2", "--gpus", "0,1", "--device", "cpu", "--backend", "onnxruntime",
        "--model", tflite_model, "--labels", label_file, "-o", out, "--stats", stats]
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "gpus-x2 over GPU 0,1: 6 frames" in p.stderr
    recs = read_jsonl(out)
    assert sorted((r["source"], r["frame"]) for r in recs) == sorted(
        (s, i) for s in pics for i in range(2))
    assert json.load(open(stats))["frames"] == 6
    bad = subprocess.run(cmd[:4] + pics + ["--gpus", "0,1", "--device", "cpu", "--mode", "sync",
                                           "--model", tflite_model],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=60)
    assert bad.returncode == 1 and "--mode sync with --gpus: GPU 0 gets 2 sources" in bad.stderr


def test_bench_rows_per_gpu_count(tmp_path):
    cmd = [sys.executable, "-m", "trtssd", "bench", "--quick", "--modes", "sync", "--model",
           "synthetic", "--sources-count", "3", "--gpus", "1,2", "--no-chart", "--out-dir",
           str(tmp_path)]
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.load(open(str(tmp_path / "bench.json")))
    rows = {m["name"]: m for m in result["modes"]}
    assert rows["gpus-x1"]["status"] == rows["gpus-x2"]["status"] == "ok"
    assert rows["gpus-x1"]["frames"] >= 10 and rows["gpus-x2"]["frames"] >= 10
    assert rows["gpus-x2"]["sources"] == 3 and rows["gpus-x2"]["batch"] == 2


@pytest.mark.gpu
def test_gpus_cuda_one_worker_per_visible_gpu(tmp_path, tflite_model, label_file):
    from conftest import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(reason)
    found, _ = gpus.visible_gpus()
    out = str(tmp_path / "dets.jsonl")
    n = 2 * len(found)
    sources = [scale_fakes.Opener("cam%d" % i, 20, image=bgr("chelsea")) for i in range(n)]
    stats = gpus.run_on_gpus(sources, out, devices="all", model=tflite_model,
                             labels=label_file, device="cuda")
    recs = read_jsonl(out)
    assert stats.frames == len(recs) == 20 * n
    for i in range(n):
        rs = [r for r in recs if r["source"] == "cam%d" % i]
        assert [r["frame"] for r in rs] == list(range(20))
        assert all(any(d["label"] == "cat" and d["score"] > 0.5 for d in r["detections"])
                   for r in rs)
