"""`trtssd bench` on real video and against the right ceilings: the generated H.264 clip, the
decode-only rows, the runs per decoder, which ceiling each row is held to. CPU (ONNX Runtime)
and fakes; no timing is asserted."""
import argparse
import io
import json
import os

import numpy as np
import pytest

from tests.support import clips
from trtssd.commands import bench, bench_video, report
from trtssd.core.errors import InputError


def _args(*argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.clip("bench-160x96", tmp_path_factory.mktemp("v"))


def test_clip_is_h264_of_the_size_and_length_asked(clip):
    cv2 = pytest.importorskip("cv2")
    av = pytest.importorskip("av")
    with av.open(clip) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    frames = clips.bgr_frames(cv2, clip)
    for im in frames:
        assert im.shape == (96, 160, 3) and im.std() > 5      # a picture, not a blank
    assert len(frames) == 24
    assert not os.path.exists(clip + ".part.mp4")
    with pytest.raises(InputError):
        bench_video.make_clip(clip + "x.mp4", size=(33, 32), frames=2)


def test_auto_clip_is_made_once_and_cached(tmp_path, monkeypatch):
    pytest.importorskip("av")
    made = []
    monkeypatch.setattr(bench_video, "make_clip", lambda path: made.append(path) or
                        open(path, "w").close())
    monkeypatch.setattr(bench_video, "clip_path", lambda cache_dir=None: str(tmp_path / "a.mp4"))
    assert bench_video.clip_for("auto") == str(tmp_path / "a.mp4")
    assert bench_video.clip_for("auto") == str(tmp_path / "a.mp4")
    assert made == [str(tmp_path / "a.mp4")]
    with pytest.raises(InputError):
        bench_video.clip_for(str(tmp_path / "missing.mp4"))


def test_decode_only_counts_every_session(clip):
    from trtssd.io.sources import VideoSource
    frames, wall, cpu = bench_video.decode_only(lambda: VideoSource(clip), 3, None, None,
                                                warmup=4)
    assert frames == 3 * (24 - 4) and wall > 0 and cpu >= 0
    frames, _, _ = bench_video.decode_only(lambda: VideoSource(clip), 2, 5, None, warmup=0)
    assert frames == 10


def test_source_sets_per_decoder():
    plan = bench.BenchPlan(_args("--quick"), gpu_reason=None)
    assert plan.source_sets() == [("", bench.QUICK_SOURCE, "cpu")]
    sets = plan.source_sets("/x/clip.mp4")
    assert sets[1:] == [(" [clip.mp4 cpu decode]", "/x/clip.mp4", "cpu"),
                        (" [clip.mp4 gpu decode]", "/x/clip.mp4", "gpu")]
    with pytest.raises(InputError):
        bench.BenchPlan(_args("--decode", "cpu,fpga"), gpu_reason=None)
    with pytest.raises(InputError):
        bench.BenchPlan(_args("--video", "/nonexistent.mp4"), gpu_reason=None)


def test_ceiling_concurrency_per_mode():
    gpu = bench.BenchPlan(_args(), gpu_reason=None)
    cpu = bench.BenchPlan(_args("--quick"), gpu_reason=None)
    assert gpu.device == "cuda" and cpu.device == "cpu"
    assert [bench.ceiling_streams(gpu, m, d) for m, d in
            (("sync", None), ("gpu", None), ("pipelined", 3), ("multi", 2))] == [1, 1, 3, 2]
    assert [bench.ceiling_streams(cpu, m, d) for m, d in (("pipelined", 3), ("multi", 2))] \
        == [1, 1]


def test_rows_are_held_to_the_ceiling_at_their_concurrency_or_the_decoder():
    res = report.new_result({}, {}, {"name": "m"})
    res["ceilings"].append(report.ceiling_result([1.0], 1, "cuda-event"))          # 1000/s
    res["ceilings_in_flight"].append(report.ceiling_result([0.5], 1, "host", streams=2))
    assert report.ceiling_for(res, 1)["fps"] == pytest.approx(1000.0)
    two = report.ceiling_for(res, 1, 2)
    assert two["fps"] == pytest.approx(2000.0) and two["streams"] == 2
    assert report.ceiling_for(res, 1, 3) is None
    assert report.ceiling_name(two) == "batch 1 x 2 streams"
    # a decoder slower than the network holds the row; a faster one does not
    slow = report.source_ceiling(600.0, two)
    assert slow["fps"] == 600.0 and slow["limited_by"] == "decode"
    assert report.source_ceiling(5000.0, two)["fps"] == pytest.approx(2000.0)
    assert report.source_ceiling(None, two) is two
    from trtssd.core.stats import RunStats
    st = RunStats(mode="pipelined-d2", frames=1500, wall_s=1.0, cpu_s=0.3)
    e = report.mode_result("pipelined-d2", st, two, depth=2)
    assert e["fraction_of_ceiling"] == pytest.approx(0.75)
    assert e["ceiling_name"] == "network batch 1 x 2 streams" and e["ceiling_streams"] == 2
    assert e["cpu_ms_per_frame"] == pytest.approx(0.2)
    assert report.mode_result("x", st, slow)["ceiling_name"] == "decode-only"
    d = report.decode_result("decode-only gpu x8", 800, 2.0, 0.5, 8, "gpu")
    assert d["fps"] == 400.0 and d["cpu_ms_per_frame"] == pytest.approx(0.625)
    text = report.format_table(dict(res, modes=[e], decode_only=[d]))
    assert "batch 1 x 2 streams" in text and "DECODE-ONLY" in text and "held to" in text


def test_stage_bars_per_frame_divide_batched_stages_only():
    e = {"batch": 4, "stages": {"capture": {"mean": 1.0}, "preprocess": {"mean": 4.0},
                                "inference": {"mean": 8.0}}}
    from trtssd.core.stats import STAGES
    per = dict(zip(STAGES, report.stage_means(e, per_frame=True)))
    assert per["capture"] == 1.0 and per["preprocess"] == 1.0 and per["inference"] == 2.0
    assert dict(zip(STAGES, report.stage_means(e)))["inference"] == 8.0


def test_quick_bench_on_a_video_with_cpu_decode(clip, tflite_model, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "o"
    code = bench.main(["--quick", "--backend", "onnxruntime", "--device", "cpu", "--modes",
                       "sync,pipelined,multi", "--depths", "2", "--sources-count", "2",
                       "--frames", "4", "--video", clip, "--model", tflite_model,
                       "--out-dir", str(out)])
    res = json.load(open(str(out / "bench.json")))
    assert code == 0, [(m["name"], m.get("reason")) for m in res["modes"]]
    names = [m["name"] for m in res["modes"]]
    c = os.path.basename(clip)
    assert names == ["sync", "pipelined-d2", "multi-x2",
                     "sync [%s cpu decode]" % c, "pipelined-d2 [%s cpu decode]" % c,
                     "multi-x2 [%s cpu decode]" % c,
                     "sync [%s gpu decode]" % c, "pipelined-d2 [%s gpu decode]" % c,
                     "multi-x2 [%s gpu decode]" % c]
    by = {m["name"]: m for m in res["modes"]}
    for n in names[:6]:
        assert by[n]["status"] == "ok" and by[n]["frames"] > 0, by[n]
        assert by[n]["ceiling_name"] and by[n]["fraction_of_ceiling"] > 0
    from tests.conftest import gpu_unavailable_reason
    from trtssd.io import nvdec
    nvdec_here = not (gpu_unavailable_reason() or nvdec.unavailable_reason())
    for n in names[6:]:
        if nvdec_here:                                  # NVDEC decodes, the CPU backend infers
            assert by[n]["status"] == "ok" and by[n]["frames"] > 0, by[n]
        else:                                           # no GPU here: said, not run
            assert by[n]["status"] == "skipped" and by[n]["reason"]
    assert by["multi-x2 [%s cpu decode]" % c]["frames"] == 4    # --frames counts all sources
    dec = {d["name"]: d for d in res["decode_only"]}
    want = {"decode-only cpu x1 [%s cpu decode]" % c, "decode-only cpu x2 [%s cpu decode]" % c}
    if nvdec_here:
        want |= {"decode-only gpu x1 [%s gpu decode]" % c, "decode-only gpu x2 [%s gpu decode]" % c}
    assert set(dec) == want
    assert all(d["fps"] > 0 and d["frames"] > 0 for d in dec.values())
    assert res["config"]["video"] == clip and res["ceilings_in_flight"] == []
    assert any("decode-only rate" in n for n in res["notes"])
    with open(str(out / "bench.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_ceiling_in_flight_on_the_gpu(cuda_context, tflite_model):
    pytest.importorskip("torch")
    from trtssd.backends import create_backend
    plan = bench.BenchPlan(_args("--device", "cuda", "--quick"), gpu_reason=None)
    b = create_backend("torch", model=tflite_model, device="cuda", max_batch=2)
    try:
        quiet = bench.Progress(stream=io.StringIO(), live=False)
        one = bench.measure_ceiling(b, 2, plan, quiet)
        two = bench.measure_ceiling_in_flight(b, 2, 2, plan, quiet)
    finally:
        b.close()
    assert one["streams"] == 1 and two["streams"] == 2 and two["batch"] == 2
    assert two["fps"] > 0 and two["ms"]["n"] == plan.ceiling_reps
    assert np.isfinite(two["fps"])
