"""trtssd.commands.report on hand-made RunStats: the table, the fractions, the JSON and the chart."""
import json
import math
import sys

import numpy as np
import pytest

from trtssd.commands import report
from trtssd.core.stats import RunStats


def _stats(mode, frames, wall_s, stage_ms, latency, cpu_s=0.5, gpu_busy=None, dropped=0,
           clock="host"):
    st = RunStats(mode=mode, frames=frames, wall_s=wall_s, cpu_s=cpu_s, gpu_busy=gpu_busy,
                  dropped=dropped)
    for stage, values in stage_ms.items():
        for v in values:
            st.add(stage, v, clock=clock if stage in ("upload", "inference", "download")
                   else "host")
    st.latency_ms.extend(latency)
    return st


def _result():
    # ceiling: batch 1 at a median of exactly 2.0 ms -> 500 images/s; batch 4 at 4.0 ms -> 1000
    c1 = report.ceiling_result([1.0, 2.0, 2.0, 3.0, 2.0], batch=1, clock="cuda-event")
    c4 = report.ceiling_result([4.0, 4.0, 4.0], batch=4, clock="cuda-event")
    res = report.new_result({"date": "2026-01-01T00:00:00Z", "gpu_name": "Test GPU"},
                            {"source": "synthetic:64x48", "width": 64, "height": 48,
                             "frames": 100, "backend": "torch", "device": "cuda",
                             "precision": "fp32", "batch": 1, "cuda_graph": True},
                            {"path": "m.tflite", "name": "m.tflite", "synthetic": False})
    res["ceilings"] += [c1, c4]
    # sync: 100 frames in 1.0 s -> 100 FPS = 20% of 500
    s_sync = _stats("sync", 100, 1.0, {"capture": [1.0, 3.0], "inference": [2.0, 2.0]},
                    latency=list(np.linspace(5.0, 15.0, 101)), cpu_s=0.75)
    # pipelined: 100 frames in 0.25 s -> 400 FPS = 80%
    s_pipe = _stats("pipelined", 100, 0.25, {"preprocess": [0.5], "inference": [2.0],
                                             "postprocess": [0.25]},
                    latency=[4.0] * 10, gpu_busy=0.9, clock="cuda-event")
    # multi x4: 400 frames in 0.5 s -> 800 FPS = 80% of the batch-4 ceiling (1000)
    s_multi = _stats("multi", 400, 0.5, {"inference": [4.0]}, latency=[6.0], dropped=3)
    res["modes"].append(report.mode_result("sync", s_sync, report.ceiling_for(res, 1)))
    res["modes"].append(report.mode_result("pipelined-d2", s_pipe, report.ceiling_for(res, 1),
                                           depth=2))
    res["modes"].append(report.mode_result("multi-x4", s_multi, report.ceiling_for(res, 4),
                                           batch=4, sources=4))
    res["modes"].append(report.skipped_mode("gpu", "gpu", "needs a CUDA GPU: none here"))
    res["modes"].append(report.failed_mode("async", "async", "RuntimeError: boom"))
    return res


def test_ceiling_is_median_images_per_second():
    c = report.ceiling_result([1.0, 2.0, 2.0, 3.0, 2.0], batch=1, clock="host")
    assert c["label"] == "network-only"
    assert c["ms"]["p50"] == pytest.approx(2.0)
    assert c["fps"] == pytest.approx(500.0)
    c8 = report.ceiling_result([4.0], batch=8, clock="cuda-event")
    assert c8["fps"] == pytest.approx(2000.0)       # 8 images per 4 ms
    assert report.ceiling_result([], batch=1, clock="host")["fps"] == 0.0


def test_fractions_against_the_ceiling_of_the_same_batch():
    res = _result()
    by = {m["name"]: m for m in res["modes"]}
    assert by["sync"]["fps"] == pytest.approx(100.0)
    assert by["sync"]["fraction_of_ceiling"] == pytest.approx(0.2)
    assert by["pipelined-d2"]["fraction_of_ceiling"] == pytest.approx(0.8)
    assert by["multi-x4"]["ceiling_fps"] == pytest.approx(1000.0)
    assert by["multi-x4"]["fraction_of_ceiling"] == pytest.approx(0.8)
    assert by["sync"]["cpu_util"] == pytest.approx(0.75)
    assert by["sync"]["latency_ms"]["p50"] == pytest.approx(10.0)
    assert by["sync"]["label"] == "end-to-end"
    assert report.fraction_of(100.0, None) is None
    assert report.fraction_of(100.0, 0.0) is None
    assert report.ceiling_for(res, 2) is None


def test_table_lists_every_mode_and_labels_figures():
    text = report.format_table(_result())
    for name in ("sync", "pipelined-d2", "multi-x4", "gpu", "async"):
        assert name in text
    assert "NETWORK-ONLY" in text and "END-TO-END" in text
    assert "SKIPPED: needs a CUDA GPU: none here" in text
    assert "FAILED: RuntimeError: boom" in text
    assert "20%" in text and "80%" in text            # fractions of the ceiling
    assert "500.0" in text and "1000.0" in text        # the two ceilings
    assert "2.000e" in text                            # inference p50, measured by CUDA events
    assert "1.000h" not in text and "2.000h" in text   # capture p50 = 2.0 on the host clock
    assert "SYNTHETIC" not in text


def test_header_says_whether_drawing_was_on():
    res = _result()
    res["config"]["draw"] = False
    assert "drawing off" in report.format_table(res)
    res["config"]["draw"] = True
    assert "drawing on" in report.format_table(res)
    del res["config"]["draw"]                  # an older JSON: nothing claimed
    assert "drawing" not in report.format_table(res)


def test_synthetic_weights_are_announced_everywhere(tmp_path):
    res = _result()
    res["model"]["synthetic"] = True
    assert "SYNTHETIC WEIGHTS" in report.format_table(res)


def test_json_has_every_number_and_no_nan(tmp_path):
    res = _result()
    res["modes"][0]["gpu_busy"] = float("nan")
    res["environment"]["np_scalar"] = np.float32(1.5)
    path = report.write_json(res, str(tmp_path / "sub" / "bench.json"))
    text = open(path).read()
    assert "NaN" not in text
    back = json.loads(text)
    assert back["schema"] == report.SCHEMA
    assert back["environment"]["np_scalar"] == 1.5
    assert back["modes"][0]["gpu_busy"] is None
    assert [m["name"] for m in back["modes"]] == ["sync", "pipelined-d2", "multi-x4", "gpu",
                                                  "async"]
    st = back["modes"][1]["stages"]
    assert set(st) == {"preprocess", "inference", "postprocess"}
    assert st["inference"]["clock"] == "cuda-event" and st["preprocess"]["clock"] == "host"
    assert back["ceilings"][0]["label"] == "network-only"


def test_stage_means_follow_stage_order():
    res = _result()
    means = report.stage_means(res["modes"][0])
    assert means[0] == pytest.approx(2.0)      # capture mean of 1 and 3
    assert means[3] == pytest.approx(2.0)      # inference
    assert means[1] == 0.0


def test_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    cv2 = pytest.importorskip("cv2")
    res = _result()
    path, why = report.write_chart(res, str(tmp_path / "c" / "bench.png"))
    assert why is None and path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    im = cv2.imread(path)
    assert im is not None and im.shape[0] > 100 and im.shape[1] > 100
    assert im.std() > 1.0          # not a blank picture


def test_chart_without_matplotlib_says_so(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)    # import raises ImportError
    path, why = report.write_chart(_result(), str(tmp_path / "x.png"))
    assert path is None and "matplotlib" in why
    assert not (tmp_path / "x.png").exists()


def test_empty_stats_give_zero_fps_not_errors():
    e = report.mode_result("sync", RunStats(mode="sync"), None)
    assert e["fps"] == 0.0 and e["fraction_of_ceiling"] is None
    assert e["latency_ms"] == {"n": 0}
    assert not math.isnan(e["frames"])


def test_notes_shared_by_modes_are_printed_once():
    res = _result()
    for m in res["modes"][:2]:
        m["notes"] = ["every stage timed on the host"]
    text = report.format_table(res)
    assert text.count("every stage timed on the host") == 1
    assert "sync, pipelined-d2: every stage timed on the host" in text
