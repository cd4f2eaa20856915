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
