"""benchmarks/bench_pcie.py: its bookkeeping on the fake driver (every case's GB/s from its
own events, the round trip checked), and without a GPU it says why it did not run."""
import pytest

from support import fake_cuda


def test_every_case_is_timed_by_its_own_events(monkeypatch):
    from benchmarks import bench_pcie
    drv = fake_cuda.install(monkeypatch, "direct", {})
    res = bench_pcie.measure(drv, 2, 2)
    assert sorted(res) == ["both_d2h_GBps", "both_h2d_GBps", "d2h_GBps", "h2d_GBps"]
    nbytes = 2 * 1080 * 1920 * 3
    for v in res.values():                    # the fake's events are 0.001 ms apart
        assert v["n"] == 2 and v["median"] == pytest.approx(nbytes / 1e-6 / 1e9)


def test_without_a_gpu_it_says_why(capsys):
    from conftest import gpu_unavailable_reason
    if not gpu_unavailable_reason():
        pytest.skip("a GPU is here: the benchmark runs instead (run_on_device.sh r5)")
    from benchmarks import bench_pcie
    assert bench_pcie.main(["--reps", "1"]) == 0
    assert "bench_pcie: skipped: " in capsys.readouterr().out


def test_the_command_prints_and_writes_every_case(monkeypatch, tmp_path, capsys):
    # main() end to end on the fake driver, with a fake device: the case names, the GPU's
    # name and placement reach the table and the JSON
    import json
    import trtssd.core.env as env
    from benchmarks import bench_pcie
    drv = fake_cuda.install(monkeypatch, "direct", {"preprocess_u8": "P64sqPii" + "f" * 9},
                            nullable={"preprocess_u8": (0,)})

    class Primary(object):
        def push(self):
            pass

        def detach(self):
            pass

    class Device(object):
        @staticmethod
        def count():
            return 1

        def __init__(self, index):
            assert index == 0

        def name(self):
            return "Fake GPU"

        def pci_bus_id(self):
            return "0000:AB:00.0"

        def retain_primary_context(self):
            return Primary()

    drv.Device = Device
    drv.Context.pop = staticmethod(lambda: None)
    monkeypatch.setattr(env, "gpu_unavailable_reason", lambda: None)
    out = tmp_path / "pcie.json"
    assert bench_pcie.main(["--frames", "2", "--reps", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for case in ("h2d", "d2h", "both_h2d", "both_d2h"):
        assert "\n  %-16s " % case in text, case
    res = json.loads(out.read_text())
    for case in ("whole", "rows"):      # the shim ran both preprocessors and compared them
        assert "\n  upload %-9s " % case in text, case
        assert res["upload_%s_ms_per_frame" % case]["n"] == 2
    assert res["device"] == "Fake GPU" and res["pci_bus_id"] == "0000:ab:00.0"
    assert "GPU 0000:ab:00.0 on NUMA node" in text
