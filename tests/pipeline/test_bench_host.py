"""benchmarks/bench_host.py runs on the CPU (a no-op driver) and reports every case."""
import json


def test_bench_host_reports_every_case(tflite_model, monkeypatch, tmp_path, capsys):
    import benchmarks.bench_host as bh
    monkeypatch.setenv("TRTSSD_MODEL", tflite_model)
    out = tmp_path / "host.json"
    bh.main(["--samples", "1", "--json", str(out)])
    got = json.loads(out.read_text())["host_us"]
    want = ["detections_b8_10box", "draw_host_1box", "draw_host_20box",
            "preprocess_nv12_b8_ring", "preprocess_nv12_b8_same", "slot_submit_result",
            "to_frame_10box"]
    try:
        import torch  # noqa: F401
        want.append("plan_key_torch_b8")
    except ImportError:
        pass
    assert sorted(got) == sorted(want)
    assert all(v > 0 for v in got.values())
    assert "slot_submit_result" in capsys.readouterr().out
