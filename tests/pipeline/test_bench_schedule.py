"""benchmarks/bench_schedule.py runs the gpu, pipelined and multi schedules on the CPU (a
no-op driver) and reports each one's host time per frame; every frame is delivered."""
import json


def test_bench_schedule_reports_every_mode(tflite_model, monkeypatch, tmp_path, capsys):
    import benchmarks.bench_schedule as bs
    monkeypatch.setenv("TRTSSD_MODEL", tflite_model)
    out = tmp_path / "schedule.json"
    bs.main(["--frames", "160", "--runs", "1", "--depth", "2", "--json", str(out)])
    got = json.loads(out.read_text())["host_us_per_frame"]
    assert sorted(got) == ["gpu", "multi", "pipelined-d2"]
    assert all(r["wall_us_per_frame"] > 0 and r["cpu_us_per_frame"] > 0 for r in got.values())
    assert "pipelined-d2" in capsys.readouterr().out


def test_every_frame_of_a_noop_run_carries_its_boxes(tflite_model, monkeypatch):
    import benchmarks.bench_schedule as bs
    from benchmarks._overhead import noop_driver
    from trtssd.io.sinks import Sink
    from trtssd.io.sources import SyntheticSource
    from trtssd.models.resolve import load_spec, onnx_for
    from trtssd.pipeline import PipelineOptions, run
    monkeypatch.setenv("TRTSSD_MODEL", tflite_model)
    spec = load_spec(onnx_for(tflite_model))
    got = []

    class Keep(Sink):
        def write(self, frame, detections):
            got.append((frame.source_id, len(detections)))

    with noop_driver():
        srcs = [SyntheticSource(1920, 1080, frames=4, seed=i, source_id="s%d" % i)
                for i in range(8)]
        st = run(srcs, None, Keep(), PipelineOptions(mode="multi", depth=2),
                 device=bs.noop_layer(spec, 8))
    assert st.frames == 32 and len(got) == 32
    assert all(k == bs.KEPT for _, k in got)
    assert sorted(set(s for s, _ in got)) == ["s%d" % i for i in range(8)]
