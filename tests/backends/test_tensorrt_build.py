"""Engine building against a fake tensorrt per API generation (8.2, 8.4, 8.5, 8.6, 10, 11).

These prove trtssd calls each generation's *documented* API (the fakes, tests/fake_tensorrt,
follow NVIDIA's pages per version); they are not runs of real TensorRT, which cannot be
installed here.
"""
import json
import os

import numpy as np
import pytest

from support.fake_tensorrt import GPU, make
from support.fake_tensorrt._base import MAGIC
from support.fake_tensorrt.models import A, C, H, W, write_onnx
from support.fake_tensorrt.scenarios import calib_images, cpu_feed_preprocess

from trtssd.backends.tensorrt import build as eb
from trtssd.core.errors import EngineError, InputError, ModelError



def names(trt):
    return [c[0] for c in trt.calls]


def header(engine_path):
    """What the fake engine file says about how it was built."""
    with open(engine_path, "rb") as f:
        data = f.read()
    assert data.startswith(MAGIC)
    return json.loads(data[len(MAGIC):].decode())


def typed_only(trt):
    return "strongly_typed_only" in trt.FEATURES


def build(trt, onnx_path, tmp_path, lines=None, **kw):
    opts = eb.BuildOptions(**kw)
    echo = (lines.append if lines is not None else None)
    return eb.ensure_engine(onnx_path, opts, cache_dir=str(tmp_path / "cache"), trt=trt, gpu=GPU,
                            echo=echo)


def test_read_onnx_matches_the_onnx_package(tmp_path):
    import onnx
    path = write_onnx(str(tmp_path / "m.onnx"), qdq=True)
    info = eb.read_onnx(path)
    m = onnx.load(path)
    assert info.op_types == [n.op_type for n in m.graph.node]
    assert info.metadata == dict((p.key, p.value) for p in m.metadata_props)
    assert info.inputs == [("images", ["N", 3, H, W])]
    assert [o[0] for o in info.outputs] == ["box_encodings", "class_scores"]
    assert info.has_qdq
    assert info.spec().num_anchors == A and info.spec().num_classes == C
    with open(path, "rb") as f:
        data = f.read()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated|not a readable ONNX|no ONNX graph"):
        eb.read_onnx(str(tmp_path / "cut.onnx"))


def test_onnx_without_spec_metadata_is_refused(tmp_path, trt):
    path = write_onnx(str(tmp_path / "m.onnx"), metadata=False)
    with pytest.raises(ModelError, match="trtssd convert"):
        build(trt, path, tmp_path)


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_build_static_batch(trt, onnx_path, tmp_path, precision):
    lines = []
    path, side = build(trt, onnx_path, tmp_path, lines, precision=precision, max_batch=3)
    n = names(trt)
    # documented order: logger/plugins, builder, explicit-batch network, parser, config, build
    order = ["init_libnvinfer_plugins", "Builder", "Builder.create_network", "OnnxParser",
             "OnnxParser.parse", "Builder.create_builder_config", "Builder.build_serialized_network"]
    assert [x for x in n if x in order] == order
    flags = [c[1][0] for c in trt.calls if c[0] == "Builder.create_network"][0]
    # EXPLICIT_BATCH (bit 0) before 10; 10 ignores it; 11 is STRONGLY_TYPED (bit 1) only
    assert flags == {"8": 1, "10": 0, "11": 2}[trt.__version__.split(".")[0]]
    # a fixed batch is written into the network: a static engine, no profile needed
    assert ("ITensor.shape=", ("images", (3, 3, H, W))) in trt.calls
    assert "Builder.create_optimization_profile" not in n
    fp16 = ("IBuilderConfig.set_flag", ("FP16",)) in trt.calls
    made = header(path)
    if typed_only(trt):
        # TensorRT 11: no precision flag; an FP16 engine is built from an FP16 copy of the ONNX
        assert not fp16 and made["strongly_typed"]
        assert made["weights"] == (["HALF"] if precision == "fp16" else ["FLOAT"])
        copy = os.path.join(os.path.dirname(path), "tiny_ssd-%s.fp16.onnx"
                            % eb.read_onnx(onnx_path).sha256[:12])
        assert os.path.isfile(copy) == (precision == "fp16")
    else:
        assert fp16 == (precision == "fp16") and not made["strongly_typed"]
        assert made["weights"] == ["FLOAT"]
    # workspace: max_workspace_size on 8.2 only, memory pools from 8.4
    if "memory_pool" in trt.FEATURES:
        assert ("IBuilderConfig.set_memory_pool_limit", ("WORKSPACE", 512 << 20)) in trt.calls
        assert "IBuilderConfig.max_workspace_size=" not in n
    else:
        assert ("IBuilderConfig.max_workspace_size=", (512 << 20,)) in trt.calls
    assert trt.deprecated == []
    # cache name encodes model sha, precision, batch, TensorRT version, GPU and sm
    info = eb.read_onnx(onnx_path)
    base = os.path.basename(path)
    assert base == "tiny_ssd-%s-%s-b3-trt%s-NVIDIA_H100_80GB_HBM3-sm90.engine" % (
        info.sha256[:12], precision, trt.__version__)
    with open(path + ".json") as f:
        on_disk = json.load(f)
    assert on_disk == side
    for key, value in (("trt_version", trt.__version__), ("gpu_name", GPU["name"]),
                       ("compute_capability", "9.0"), ("model_sha256", info.sha256),
                       ("precision", precision), ("max_batch", 3), ("dynamic_batch", False)):
        assert side[key] == value
    assert side["engine_bytes"] == os.path.getsize(path)
    assert side["spec"]["num_classes"] == C
    assert "--force" in side["rebuild_command"] and "--max-batch 3" in side["rebuild_command"]
    assert side["rebuild_command"].startswith("trtssd build-engine ")
    assert side["strongly_typed"] == typed_only(trt) and side["version_compatible"] is False
    assert any("engine written" in l for l in lines)


def test_progress_output(trt, onnx_path, tmp_path):
    lines = []
    build(trt, onnx_path, tmp_path, lines)
    if hasattr(trt, "IProgressMonitor"):
        assert "IBuilderConfig.progress_monitor=" in names(trt)
        assert "progress_monitor.used" in names(trt)
        assert "Building engine (3 steps)" in lines
        assert any(l.startswith("  Tactic selection done in") for l in lines)
    else:
        assert any(l.startswith("building the engine") and "done in" in l for l in lines)
        assert any(l.startswith("parsing the ONNX graph: done in") for l in lines)


def test_cached_engine_reused_and_stale_rebuilt(trt, onnx_path, tmp_path):
    path, side = build(trt, onnx_path, tmp_path)
    n_builds = names(trt).count("Builder.build_serialized_network")
    lines = []
    path2, _ = build(trt, onnx_path, tmp_path, lines)
    assert path2 == path and names(trt).count("Builder.build_serialized_network") == n_builds
    assert any("using cached engine" in l for l in lines)
    # stale: sidecar claims another TensorRT and another GPU -> rebuilt, not loaded
    side["trt_version"] = "7.1.3"
    side["gpu_name"] = "NVIDIA Tegra X1"
    with open(path + ".json", "w") as f:
        json.dump(side, f)
    lines = []
    build(trt, onnx_path, tmp_path, lines)
    assert names(trt).count("Builder.build_serialized_network") == n_builds + 1
    stale = [l for l in lines if "stale" in l][0]
    assert "TensorRT 7.1.3" in stale and "NVIDIA Tegra X1" in stale
    with open(path + ".json") as f:
        assert json.load(f)["trt_version"] == trt.__version__
    # a truncated engine with its old sidecar is rebuilt too
    with open(path, "r+b") as f:
        f.truncate(10)
    lines = []
    build(trt, onnx_path, tmp_path, lines)
    assert any("truncated or corrupt" in l for l in lines)
    assert names(trt).count("Builder.build_serialized_network") == n_builds + 2


def test_dynamic_batch_profiles(trt, onnx_path, tmp_path):
    path, side = build(trt, onnx_path, tmp_path, max_batch=8, dynamic_batch=True, opt_batch=4,
                       profiles=3)
    sets = [c[1] for c in trt.calls if c[0] == "IOptimizationProfile.set_shape"]
    assert sets == [("images", (1, 3, H, W), (4, 3, H, W), (8, 3, H, W))] * 3
    assert names(trt).count("IBuilderConfig.add_optimization_profile") == 3
    assert "ITensor.shape=" not in names(trt)
    assert "-b1-4-8-" in os.path.basename(path)
    assert side["dynamic_batch"] and side["profiles"] == 3


def test_int8_from_qdq_needs_no_calibration(trt, tmp_path):
    path = write_onnx(str(tmp_path / "q.onnx"), qdq=True)
    engine, side = build(trt, path, tmp_path, precision="int8")
    assert side["int8_mode"] == "qdq" and header(engine)["int8_mode"] == "qdq"
    n = names(trt)
    # 8.x-10.x: the INT8 flag over the Q/DQ graph; 11: the strongly typed graph's own types
    assert (("IBuilderConfig.set_flag", ("INT8",)) in trt.calls) == (not typed_only(trt))
    assert "IBuilderConfig.int8_calibrator=" not in n


def test_int8_qdq_flag_needs_qdq_nodes(trt, onnx_path, tmp_path):
    with pytest.raises(InputError, match="--qdq.*no QuantizeLinear"):
        build(trt, onnx_path, tmp_path, precision="int8", qdq=True)
    assert "Builder.build_serialized_network" not in names(trt)


def test_int8_without_qdq_or_images_is_refused(trt, onnx_path, tmp_path):
    with pytest.raises(InputError, match="--qdq" if typed_only(trt) else "--calib-images"):
        build(trt, onnx_path, tmp_path, precision="int8")


def test_int8_calibration_on_tensorrt_11_says_use_qdq(onnx_path, tmp_path):
    images = calib_images(tmp_path / "calib", 4)
    with pytest.raises(InputError) as e:
        build(make("11"), onnx_path, tmp_path, precision="int8", calib_images=images)
    msg = str(e.value)
    assert "TensorRT 11.4.0.106 builds INT8 only from a model's own Q/DQ scales" in msg
    assert "--precision int8 --qdq" in msg and "--calib-images needs TensorRT 10" in msg


@pytest.mark.parametrize("dynamic", [False, True])
def test_int8_entropy_calibrator_and_cache(trt, onnx_path, tmp_path, dynamic):
    if typed_only(trt):
        pytest.skip("TensorRT %s has no INT8 calibrator (see the test above)" % trt.__version__)
    images = calib_images(tmp_path / "calib", 7)
    seen = []
    opts = eb.BuildOptions(precision="int8", calib_images=images, calib_batch=3,
                           dynamic_batch=dynamic, max_batch=4)
    out = str(tmp_path / "e.engine")
    side = eb.build_engine(onnx_path, out, opts, trt=trt, gpu=GPU, echo=None,
                           preprocess=cpu_feed_preprocess(seen))
    assert side["int8_mode"] == "calibrator"
    # 7 images, batches of 3: two full batches reach TensorRT, the rest is dropped
    gets = [c for c in trt.calls if c[0] == "calibrator.get_batch"]
    assert [g[1][0] for g in gets] == [(3, 3, H, W)] * 2
    assert len(seen) == 2 and all(np.isfinite(s.host).all() for s in seen)
    assert ("IBuilderConfig.set_calibration_profile" in names(trt)) == dynamic
    cache = str(tmp_path / ("tiny_ssd-%s.calib" % eb.read_onnx(onnx_path).sha256[:12]))
    assert open(cache, "rb").read().startswith(b"FAKECALIB")
    # second build: the calibration cache is read, no image is preprocessed
    trt.calls[:] = []
    seen2 = []
    eb.build_engine(onnx_path, out, eb.BuildOptions(precision="int8", calib_images=images,
                                                    calib_batch=3), trt=trt, gpu=GPU, echo=None,
                    preprocess=cpu_feed_preprocess(seen2))
    assert ("calibrator.read_calibration_cache", (True,)) in trt.calls
    assert seen2 == [] and "calibrator.get_batch" not in names(trt)


def test_parser_error_names_the_operator(trt, tmp_path):
    path = write_onnx(str(tmp_path / "bad.onnx"), extra_ops=["NoSuchOp"])
    with pytest.raises(ModelError) as e:
        build(trt, path, tmp_path)
    msg = str(e.value)
    # TensorRT 11 parses the FP16 copy, whose input Cast comes first
    assert "NoSuchOp" in msg and ("node 3" if typed_only(trt) else "node 2") in msg
    assert (".fp16.onnx; node numbers are the copy's" in msg) == typed_only(trt)
    assert "trtssd convert" in msg and "onnxruntime" in msg
    assert "Builder.build_serialized_network" not in names(trt)
    # no engine or sidecar; on 11 the FP16 copy of the ONNX stays (complete, reused next time)
    cache = str(tmp_path / "cache")
    left = os.listdir(cache) if os.path.exists(cache) else []
    assert [n for n in left if not n.endswith(".fp16.onnx")] == []


def test_missing_plugin(trt, tmp_path):
    path = write_onnx(str(tmp_path / "nms.onnx"), extra_ops=["EfficientNMS_TRT"])
    trt.faults.add("missing_plugin")
    with pytest.raises(ModelError) as e:
        build(trt, path, tmp_path)
    msg = str(e.value)
    assert "EfficientNMS_TRT" in msg and "plugin" in msg and "libnvinfer_plugin" in msg


def test_plugins_are_registered_before_parsing(trt, tmp_path):
    path = write_onnx(str(tmp_path / "nms.onnx"), extra_ops=["EfficientNMS_TRT"])
    build(trt, path, tmp_path)   # init_libnvinfer_plugins ran, so the fake parser knows it
    n = names(trt)
    assert n.index("init_libnvinfer_plugins") < n.index("OnnxParser.parse")


def test_out_of_memory_while_building(trt, onnx_path, tmp_path):
    trt.faults.add("oom")
    with pytest.raises(EngineError) as e:
        build(trt, onnx_path, tmp_path)
    msg = str(e.value)
    assert "out of memory" in msg and "--workspace-mb" in msg and "--max-batch" in msg
    cache = tmp_path / "cache"
    assert not cache.exists() or not [p for p in os.listdir(str(cache)) if p.endswith("engine")]


def test_timing_cache_written_and_reused(trt, onnx_path, tmp_path):
    tc = str(tmp_path / "t.cache")
    build(trt, onnx_path, tmp_path, timing_cache=tc)
    first = open(tc, "rb").read()
    assert first.startswith(b"FAKECACHE")
    build(trt, onnx_path, tmp_path, timing_cache=tc, force=True)
    assert [c[1][0] for c in trt.calls if c[0] == "IBuilderConfig.create_timing_cache"][-1] == \
        len(first)
    assert open(tc, "rb").read().count(b";") == first.count(b";") + 1


def test_bad_options():
    for kw in ({"precision": "int4"}, {"max_batch": 0}, {"dynamic_batch": True, "max_batch": 2,
                                                         "opt_batch": 3},
               {"workspace_mb": -1}, {"qdq": True}):
        with pytest.raises(InputError):
            eb.BuildOptions(**kw)


def test_cli_main_and_subcommand_api(onnx_path, tmp_path, monkeypatch, capsys):
    import argparse
    import sys
    fake = make("10")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(eb, "gpu_identity", lambda device=0: dict(GPU))
    rc = eb.main([onnx_path, "--cache-dir", str(tmp_path / "c"), "--max-batch", "2", "-q"])
    out = capsys.readouterr()
    assert rc == 0 and out.out.strip().endswith("-b2-trt10.3.0.26-NVIDIA_H100_80GB_HBM3-sm90.engine")
    parser = argparse.ArgumentParser()
    eb.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "missing.onnx"), "-q"])
    assert eb.run(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_trtssd_build_engine_command(onnx_path, tmp_path):
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.Popen([sys.executable, "-m", "trtssd", "build-engine", "--help"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=repo)
    out, err = p.communicate()
    assert p.returncode == 0, err
    for flag in (b"--precision", b"--calib-images", b"--qdq", b"--version-compatible"):
        assert flag in out


def test_calibration_feed_on_the_gpu_matches_cpu_preprocess(cuda_context, tmp_path):
    """GPU: the calibrator's default feed (GpuPreprocessor) gives what cpu_preprocess gives."""
    from trtssd.preprocess import PreprocessOptions, cpu_preprocess
    from support.fake_tensorrt.models import small_spec
    images = calib_images(tmp_path / "calib", 4)
    spec = small_spec()
    feed = eb.CalibrationFeed(eb.list_images(images), spec, 2)
    try:
        got = []
        for dev in feed:
            got.append(dev.copy_to_host()[:2].copy())
            ptr = eb.device_pointer(dev)
            assert ptr != 0
    finally:
        feed.close()
    import cv2
    frames = [cv2.imread(p) for p in eb.list_images(images)]
    want, _ = cpu_preprocess(frames, PreprocessOptions.from_spec(spec, input_format="BGR"))
    # bilinear resize in float on the GPU vs OpenCV's fixed-point resize: up to ~1 grey level
    # of 255 after normalising by 1/128 -> 1/128 + rounding; 0.02 leaves room for both
    np.testing.assert_allclose(np.concatenate(got), want, atol=0.02)


@pytest.mark.parametrize("generation", ["8.6", "10", "11"])
def test_version_compatible_flags(generation, onnx_path, tmp_path):
    trt = make(generation)
    path, side = build(trt, onnx_path, tmp_path, version_compatible=True)
    flags = [c[1][0] for c in trt.calls if c[0] == "IBuilderConfig.set_flag"]
    assert "VERSION_COMPATIBLE" in flags and "EXCLUDE_LEAN_RUNTIME" in flags
    assert side["version_compatible"] and "-vc-" in os.path.basename(path)
    # a plain engine of the same model is another file, not a cache hit
    other, side2 = build(trt, onnx_path, tmp_path)
    assert other != path and not side2["version_compatible"]


@pytest.mark.parametrize("generation", ["8.2", "8.4", "8.5"])
def test_version_compatible_needs_8_6(generation, onnx_path, tmp_path):
    with pytest.raises(InputError, match="VERSION_COMPATIBLE came with 8.6"):
        build(make(generation), onnx_path, tmp_path, version_compatible=True)


def test_qdq_from_a_tflite_through_the_converter(tmp_path, monkeypatch):
    """--qdq with a .tflite converts with the converter's symmetric Q/DQ (int8, zero points 0:
    what TensorRT builds) into the model cache (once), and builds a strongly typed INT8 engine
    from it."""
    from trtssd.models import convert
    made = []

    class Result(object):
        def save(self, path):
            made.append(path)
            write_onnx(path, qdq=True)

    def convert_model(path, qdq=False):
        assert qdq == "symmetric"
        return Result()
    monkeypatch.setattr(convert, "convert_model", convert_model)
    monkeypatch.setenv("TRTSSD_CACHE", str(tmp_path / "models"))
    tfl = tmp_path / "detect.tflite"
    tfl.write_bytes(b"not read: the converter is replaced")
    for _ in range(2):
        path, side = build(make("11"), str(tfl), tmp_path, precision="int8", qdq=True)
    assert len(made) == 1 and side["int8_mode"] == "qdq"
    assert header(path)["int8_mode"] == "qdq" and header(path)["strongly_typed"]
    assert "--qdq" in side["rebuild_command"]
    cached = [n for n in os.listdir(str(tmp_path / "models"))]
    assert len(cached) == 1 and cached[0].endswith(".qdq-symmetric.onnx")
    with pytest.raises(InputError, match="synthetic model has random float weights"):
        build(make("11"), "synthetic", tmp_path, precision="int8", qdq=True)


def test_fp16_of_a_qdq_model_on_tensorrt_11_says_build_int8(tmp_path):
    path = write_onnx(str(tmp_path / "q.onnx"), qdq=True)
    with pytest.raises(InputError, match="Q/DQ.*--precision int8"):
        build(make("11"), path, tmp_path, precision="fp16")
