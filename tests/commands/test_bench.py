"""`trtssd bench`: options, the order of the work, skips, failures, and the whole run on the CPU
with the real model (ONNX Runtime) writing JSON and PNG. No timing is asserted anywhere."""
import argparse
import io
import json
import os
import sys
import types

import numpy as np
import pytest

from trtssd.commands import bench
from trtssd.commands import report
from trtssd.core.errors import EnvironmentProblem, InputError, ModelError, TrtssdError
from trtssd.core.stats import RunStats


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(argv))


# ---------------------------------------------------------------------------------------------
# fakes: a CPU backend and a pipeline module, recording what the bench asked of them
# ---------------------------------------------------------------------------------------------

class FakeSpec(object):
    num_anchors, num_classes, input_height, input_width, synthetic = 7, 3, 5, 5, False


class FakeContext(object):
    def __init__(self, backend, images, boxes, scores):
        self.b, self.boxes, self.scores = backend, boxes, scores

    def enqueue(self, stream=None):
        self.b.log.append(("enqueue", self.b.max_batch))
        if not self.b.poison_outputs:
            self.boxes[...] = 0.25
            self.scores[...] = 0.5

    def close(self):
        self.b.log.append(("ctx-close", self.b.max_batch))


class FakeBackend(object):
    name, device, precision = "fake", "cpu", "fp32"
    input_dtype = np.dtype(np.float32)

    def __init__(self, log, max_batch, poison_outputs=False):
        self.log, self.max_batch, self.poison_outputs = log, max_batch, poison_outputs
        self.spec = FakeSpec()
        self.closed = False

    def input_shape(self, batch):
        return (batch, 3, 5, 5)

    def output_shapes(self, batch):
        return (batch, 7, 4), (batch, 7, 3)

    def create_context(self, images, boxes, scores):
        assert images.shape[0] == boxes.shape[0] == scores.shape[0] <= self.max_batch
        return FakeContext(self, images, boxes, scores)

    def close(self):
        self.closed = True


def _fake_pipeline(log, fail=None):
    """A stand-in for trtssd.pipeline: counts frames out of the sources it is given."""
    mod = types.ModuleType("trtssd.pipeline")

    class PipelineOptions(object):
        def __init__(self, **kw):
            self.__dict__.update(kw)

    def run(sources, backend, sink=None, options=None):
        srcs = sources if isinstance(sources, list) else [sources]
        log.append(("pipeline", options.mode, options.depth, options.batch, len(srcs),
                    options.max_frames, backend.max_batch))
        if fail and options.mode in fail:
            raise fail[options.mode]
        st = RunStats(mode=options.mode)
        for _ in range(options.max_frames):
            for s in srcs:
                f = s.read()
                assert f is not None
                st.frames += 1
                st.add("inference", 1.0)
                st.add("capture", 0.5)
                st.latency_ms.append(2.0)
        st.wall_s = st.frames / 50.0       # 50 FPS end-to-end, whatever the mode
        st.cpu_s = st.wall_s / 2
        return st

    mod.PipelineOptions, mod.run = PipelineOptions, run
    return mod


@pytest.fixture
def fakes(monkeypatch):
    log = []
    backends = []

    def make_backend(plan, model_path, max_batch):
        log.append(("backend", max_batch))
        b = FakeBackend(log, max_batch)
        backends.append(b)
        return b

    monkeypatch.setattr(bench, "make_backend", make_backend)
    monkeypatch.setattr(bench, "prepare_model", lambda plan, progress: (
        "fake.onnx", {"path": "fake.onnx", "onnx": "fake.onnx", "synthetic": False,
                      "name": "fake"}))
    monkeypatch.setitem(sys.modules, "trtssd.pipeline", _fake_pipeline(log))
    return types.SimpleNamespace(log=log, backends=backends, monkeypatch=monkeypatch)


def _quiet():
    return bench.Progress(stream=io.StringIO(), live=False)


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------

def test_bad_options_are_input_errors_before_anything_runs():
    for argv, word in ((["--modes", "sync,warp"], "warp"), (["--depths", "2,x"], "x"),
                       (["--depths", "0"], "depth"), (["--batch", "0"], "--batch"),
                       (["--frames", "0"], "--frames"), (["--sources-count", "0"], "sources"),
                       (["--source", "synthetic:axb"], "synthetic:WIDTHxHEIGHT"),
                       (["--modes", ""], "empty")):
        with pytest.raises(InputError) as e:
            bench.BenchPlan(_args(*argv), gpu_reason=None)
        assert word in str(e.value)


def test_cuda_without_gpu_says_so():
    with pytest.raises(EnvironmentProblem) as e:
        bench.BenchPlan(_args("--device", "cuda"), gpu_reason="no CUDA device on this machine")
    assert "no CUDA device" in str(e.value) and "without --device" in str(e.value)


def test_defaults_without_gpu_are_cpu_modes_with_onnxruntime_and_say_so():
    plan = bench.BenchPlan(_args(), gpu_reason="pycuda is not installed")
    assert plan.device == "cpu" and plan.backend == "onnxruntime"
    assert plan.source == bench.DEFAULT_SOURCE and plan.synthetic_size == (1920, 1080, None)
    assert any("ONNX Runtime" in n and "pycuda is not installed" in n for n in plan.notes)


def test_quick_defaults():
    plan = bench.BenchPlan(_args("--quick"), gpu_reason=None)
    assert plan.device == "cpu" and plan.source == bench.QUICK_SOURCE
    assert plan.frames == 10 and plan.warmup == 2
    plan = bench.BenchPlan(_args("--quick", "--seconds", "2"), gpu_reason=None)
    assert plan.frames is None and plan.seconds == 2.0


def test_runs_expand_depths_and_sources():
    plan = bench.BenchPlan(_args("--modes", "sync,pipelined,multi", "--depths", "2,3",
                                 "--sources-count", "5", "--batch", "2"), gpu_reason=None)
    assert plan.runs() == [("sync", "sync", None, 1, 1),      # --batch is for pipelined
                           ("pipelined-d2", "pipelined", 2, 2, 1),
                           ("pipelined-d3", "pipelined", 3, 2, 1),
                           ("multi-x5", "multi", 2, 5, 5)]    # --multi-depth 2
    plan = bench.BenchPlan(_args("--modes", "multi", "--multi-depth", "3"), gpu_reason=None)
    assert plan.runs() == [("multi-x8", "multi", 3, 8, 8)]
    with pytest.raises(InputError):
        bench.BenchPlan(_args("--multi-depth", "0"), gpu_reason=None)
    assert bench.parse_synthetic("synthetic:64x48@30") == (64, 48, 30.0)
    assert bench.parse_synthetic("clip.mp4") is None


# ---------------------------------------------------------------------------------------------
# the order of the work, skips and failures (fake backend and pipeline)
# ---------------------------------------------------------------------------------------------

def test_ceiling_first_then_every_mode_with_warmup(fakes):
    plan = bench.BenchPlan(_args("--frames", "6", "--warmup", "2", "--source", "synthetic:64x48"),
                           gpu_reason="no CUDA device (test)")
    res = bench.bench(plan, _quiet())
    log = fakes.log
    first_pipeline = min(i for i, e in enumerate(log) if e[0] == "pipeline")
    last_enqueue = max(i for i, e in enumerate(log) if e[0] == "enqueue")
    assert last_enqueue < first_pipeline                 # the ceiling is measured first
    runs = [e for e in log if e[0] == "pipeline"]
    # each mode that runs on the CPU: a warm-up run of 2 frames, then the measured run of 6;
    # the gpu mode needs a CUDA backend and is skipped
    assert [(r[1], r[2], r[5]) for r in runs] == [
        ("sync", 2, 2), ("sync", 2, 6), ("async", 2, 2), ("async", 2, 6),
        ("pipelined", 2, 2), ("pipelined", 2, 6), ("pipelined", 3, 2), ("pipelined", 3, 6),
        ("pipelined", 4, 2), ("pipelined", 4, 6), ("multi", 2, 2), ("multi", 2, 6)]
    names = [m["name"] for m in res["modes"]]
    assert names == ["sync", "async", "gpu", "pipelined-d2", "pipelined-d3", "pipelined-d4",
                     "multi-x8"]
    by = {m["name"]: m for m in res["modes"]}
    assert by["gpu"]["status"] == "skipped" and "no CUDA device (test)" in by["gpu"]["reason"]
    assert [c["batch"] for c in res["ceilings"]] == [1, 8]
    c = report.ceiling_for(res, 1)
    assert c["clock"] == "host" and c["ms"]["n"] == plan.ceiling_reps and c["fps"] > 0
    assert by["multi-x8"]["ceiling_batch"] == 8
    for n in ("sync", "async", "pipelined-d2", "pipelined-d3", "pipelined-d4"):
        m = by[n]
        assert m["status"] == "ok" and m["frames"] == 6 and m["label"] == "end-to-end"
        assert m["fps"] == pytest.approx(50.0)
        assert m["fraction_of_ceiling"] == pytest.approx(50.0 / c["fps"])
        assert m["stages"]["inference"]["n"] == 6
    assert all(b.closed for b in fakes.backends)
    assert res["config"]["width"] == 64 and res["config"]["height"] == 48
    assert res["config"]["device"] == "cpu"
    assert res["environment"]["command"]


def test_multi_gets_its_own_batch_and_ceiling(fakes):
    # a "GPU" plan whose backend is the fake: the GPU modes are not skipped
    plan = bench.BenchPlan(_args("--frames", "3", "--warmup", "0", "--modes", "sync,multi",
                                 "--sources-count", "3", "--source", "synthetic:32x32"),
                           gpu_reason=None)
    plan.device = "cpu"
    fakes.monkeypatch.setattr(bench, "skip_reason", lambda plan, mode, backend: None)
    res = bench.bench(plan, _quiet())
    assert [c["batch"] for c in res["ceilings"]] == [1, 3]
    runs = [e for e in fakes.log if e[0] == "pipeline"]
    assert runs[1][1:] == ("multi", 2, 3, 3, 3, 3)       # 3 sources, batch 3, batch-3 backend
    m = res["modes"][1]
    assert m["name"] == "multi-x3" and m["frames"] == 9 and m["ceiling_batch"] == 3
    assert m["fraction_of_ceiling"] == pytest.approx(m["fps"] / res["ceilings"][1]["fps"])


def test_a_failing_mode_is_reported_and_the_others_still_run(fakes, tmp_path):
    fakes.monkeypatch.setitem(sys.modules, "trtssd.pipeline", _fake_pipeline(
        fakes.log, fail={"sync": RuntimeError("kaboom"),
                         "async": EnvironmentProblem("async needs a thing; install it")}))
    fakes.monkeypatch.setattr(bench, "gpu_unavailable_reason", lambda: "no GPU (test)")
    out = str(tmp_path / "o")
    code = bench.run(_args("--frames", "2", "--warmup", "0", "--source", "synthetic:32x32",
                           "--modes", "sync,async,gpu", "--out-dir", out))
    assert code == 1
    res = json.load(open(os.path.join(out, "bench.json")))
    by = {m["name"]: m for m in res["modes"]}
    assert by["sync"]["status"] == "failed" and "kaboom" in by["sync"]["reason"]
    assert by["async"]["status"] == "skipped" and "install it" in by["async"]["reason"]
    assert by["gpu"]["status"] == "skipped" and "no GPU (test)" in by["gpu"]["reason"]


def test_ceiling_refuses_broken_outputs(fakes):
    plan = bench.BenchPlan(_args("--quick"), gpu_reason=None)
    b = FakeBackend([], 1, poison_outputs=True)        # outputs stay NaN
    with pytest.raises(TrtssdError) as e:
        bench.measure_ceiling(b, 1, plan, _quiet())
    assert "not finite" in str(e.value)


def test_progress_is_live_only_on_a_terminal():
    s = io.StringIO()
    p = bench.Progress(stream=s)
    assert not p.live                                   # StringIO is not a TTY
    with p.track("x", lambda: 3, 10):
        pass
    p.log("hello")
    assert s.getvalue() == "hello\n"
    s = io.StringIO()
    p = bench.Progress(stream=s, live=True)
    t = p.track("mode", lambda: 4, 10)
    t._t0 = 0.0
    assert "4/10" in t._line() and "mode" in t._line()


# ---------------------------------------------------------------------------------------------
# the real thing on the CPU: the real model through ONNX Runtime, JSON and PNG written
# ---------------------------------------------------------------------------------------------

def _check_common(res, modes_expected):
    assert res["schema"] == report.SCHEMA
    env = res["environment"]
    for k in ("date", "command", "python", "numpy", "opencv", "backend", "backend_version",
              "gpu_name", "driver_version", "cuda_driver_api"):
        assert k in env
    assert env["command"].startswith("trtssd bench")
    cfg = res["config"]
    for k in ("source", "width", "height", "precision", "batch", "frames", "backend", "device"):
        assert k in cfg
    assert [m["name"] for m in res["modes"]] == modes_expected
    assert res["ceilings"] and all(c["label"] == "network-only" and c["fps"] > 0
                                   for c in res["ceilings"])


def test_quick_bench_on_the_cpu_with_the_real_model(tflite_model, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bench-out"
    code = bench.main(["--quick", "--backend", "onnxruntime", "--device", "cpu",
                       "--model", tflite_model, "--out-dir", str(out)])
    assert code == 0
    res = json.load(open(str(out / "bench.json")))
    _check_common(res, ["sync", "async", "gpu", "pipelined-d2", "pipelined-d3",
                        "pipelined-d4", "multi-x8"])
    assert res["model"]["synthetic"] is False
    assert res["config"]["device"] == "cpu" and res["environment"]["backend_version"]
    assert res["environment"]["command"].endswith("--out-dir " + str(out))
    assert res["ceilings"][0]["clock"] == "host"
    by = {m["name"]: m for m in res["modes"]}
    for n in ("sync", "async", "pipelined-d2", "pipelined-d3", "pipelined-d4", "multi-x8"):
        m = by[n]
        assert m["status"] == "ok", m
        assert m["frames"] > 0 and m["fps"] > 0 and m["wall_s"] > 0
        assert 0 < m["fraction_of_ceiling"] < 100
        assert m["latency_ms"]["n"] > 0 and m["latency_ms"]["p50"] > 0
        assert "inference" in m["stages"] and m["stages"]["inference"]["n"] > 0
        assert m["dropped"] == 0                       # a synthetic non-live source never drops
    assert by["gpu"]["status"] == "skipped" and by["gpu"]["reason"], by["gpu"]
    assert [c["batch"] for c in res["ceilings"]] == [1, 8]      # multi x8 has its own
    # drawing is off by default, and the JSON and notes say so; no draw stage is timed
    assert res["config"]["draw"] is False
    assert any(n.startswith("drawing off") for n in res["notes"])
    assert any("pinned memory" in n and "DMA camera" in n for n in res["notes"])
    assert all("draw" not in m["stages"] for m in by.values() if m["status"] == "ok")
    with open(str(out / "bench.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC
    cv2 = pytest.importorskip("cv2")
    im = cv2.imread(str(out / "bench.png"))
    assert im is not None and im.shape[0] > 100 and im.std() > 1.0


def test_missing_model_falls_back_to_synthetic_and_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from trtssd.models import resolve as models

    real = models.resolve_model

    def no_model(path=None):
        if not path:                  # as if neither --model, $TRTSSD_MODEL nor the file
            raise ModelError("no model given (test)")
        return real(path)
    monkeypatch.delenv("TRTSSD_MODEL", raising=False)
    monkeypatch.setattr(models, "resolve_model", no_model)
    monkeypatch.setenv("TRTSSD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "o"
    code = bench.main(["--quick", "--device", "cpu", "--modes", "sync", "--frames", "2",
                       "--out-dir", str(out)])
    assert code == 0
    res = json.load(open(str(out / "bench.json")))
    _check_common(res, ["sync"])
    assert res["model"]["synthetic"] is True
    assert any("SYNTHETIC" in n for n in res["notes"])
    assert "SYNTHETIC WEIGHTS" in capsys.readouterr().out   # the table says so too


# ---------------------------------------------------------------------------------------------
# GPU (the lead runs this on the H100): every mode with the torch backend, CUDA-event ceiling
# ---------------------------------------------------------------------------------------------

def test_quick_bench_on_the_gpu(cuda_context, tflite_model, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "gpu"
    code = bench.main(["--device", "cuda", "--backend", "torch", "--frames", "24",
                       "--warmup", "4", "--depths", "2,3", "--sources-count", "4",
                       "--source", "synthetic:1280x720", "--model", tflite_model,
                       "--out-dir", str(out)])
    res = json.load(open(str(out / "bench.json")))
    _check_common(res, ["sync", "async", "gpu", "pipelined-d2", "pipelined-d3", "multi-x4"])
    assert code == 0, [(m["name"], m.get("reason")) for m in res["modes"]]
    assert res["environment"]["gpu_name"] and res["environment"]["cuda_driver_api"]
    assert [c["batch"] for c in res["ceilings"]] == [1, 4]
    assert all(c["clock"] == "cuda-event" for c in res["ceilings"])
    for m in res["modes"]:
        assert m["status"] == "ok", m
        assert m["frames"] >= 24 and m["fps"] > 0 and m["fraction_of_ceiling"] > 0
        assert m["stages"] and m["latency_ms"]["n"] > 0
    with open(str(out / "bench.png"), "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_draw_flag_is_timed_and_announced(tflite_model, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "drawn"
    code = bench.main(["--quick", "--backend", "onnxruntime", "--device", "cpu", "--modes",
                       "sync,pipelined", "--depths", "2", "--frames", "3", "--draw",
                       "--model", tflite_model, "--out-dir", str(out), "--no-chart"])
    assert code == 0
    res = json.load(open(str(out / "bench.json")))
    assert res["config"]["draw"] is True and any(n.startswith("drawing on") for n in res["notes"])
    for m in res["modes"]:        # read-only synthetic frames are drawn on a copy, timed
        assert m["status"] == "ok" and m["stages"]["draw"]["n"] == m["frames"], m
    assert "drawing on" in capsys.readouterr().out
