"""benchmarks/bench_nvdec.py: its bookkeeping on the CPU with readers of known pace (frames,
each session's rate, the round pace set by the slowest, a failing reader reported, the side
thread stopped), and on a GPU with PyNvVideoCodec every case on the small test clip."""
import threading
import time

import pytest

from tests.conftest import gpu_unavailable_reason
from tests.support import clips


class Paced(object):
    """``frames`` frames after the warm-up, ``step_s`` apart; closed once."""

    def __init__(self, frames, step_s, fail_at=None):
        from benchmarks import bench_nvdec
        self.left = frames + bench_nvdec.WARMUP
        self.step_s, self.fail_at, self.closed = step_s, fail_at, 0

    def step(self):
        if self.fail_at is not None and self.left == self.fail_at:
            raise ValueError("decoder broke")
        if self.left <= 0:
            return False
        self.left -= 1
        time.sleep(self.step_s)
        return True

    def close(self):
        self.closed += 1


def test_frames_session_rates_and_the_round_pace():
    from benchmarks import bench_nvdec
    made = []
    paces = iter([(20, 0.002), (20, 0.001)])    # the first session takes twice as long

    def make():
        made.append(Paced(*next(paces)))
        return made[-1]
    r = bench_nvdec.run_threads(make, 2)
    assert r["frames"] == 40
    # the slow session's 20 frames take >= 40 ms: the wall and its rate say so
    assert r["wall_s"] >= 0.040 and r["session_fps_min"] <= 20 / 0.040
    assert r["session_fps_max"] > r["session_fps_min"]
    assert r["round_fps"] == pytest.approx(2 * r["session_fps_min"])
    assert r["fps"] == pytest.approx(40 / r["wall_s"])
    assert [m.closed for m in made] == [1, 1]


def test_a_failing_reader_is_raised_and_every_reader_closed():
    from benchmarks import bench_nvdec
    made = []

    def make():
        made.append(Paced(5, 0.0, fail_at=3 if not made else None))
        return made[-1]
    with pytest.raises(ValueError, match="decoder broke"):
        bench_nvdec.run_threads(make, 2)
    assert [m.closed for m in made] == [1, 1]


def test_the_side_thread_runs_for_the_case_and_is_stopped():
    from benchmarks import bench_nvdec
    seen = []

    def beside(stop):
        seen.append(threading.current_thread().name)
        stop.wait()
        seen.append("stopped")
    bench_nvdec.run_threads(lambda: Paced(3, 0.001), 1, beside)
    assert len(seen) == 2 and seen[1] == "stopped"


def test_every_case_on_the_gpu(tmp_path):
    why = gpu_unavailable_reason()
    if why:
        pytest.skip("needs a CUDA GPU with NVDEC: %s" % why)
    from trtssd.io.nvdec import unavailable_reason
    why = unavailable_reason()
    if why:
        pytest.skip(why)
    clip = clips.clip("bench-160x96", tmp_path)       # 24 frames
    from benchmarks import bench_nvdec
    for case in ("threads", "threaded-decoder", "own", "own-high", "processes", "ipc",
                 "threads+python"):
        make = {"threads": lambda: bench_nvdec.SourceReader(clip),
                "threaded-decoder": lambda: bench_nvdec.ThreadedReader(clip),
                "own": lambda: bench_nvdec.OwnStreamReader(clip, False),
                "own-high": lambda: bench_nvdec.OwnStreamReader(clip, True)}
        if case in ("processes", "ipc"):
            r = bench_nvdec.run_processes(clip, 2, ipc=case == "ipc")
        else:
            r = bench_nvdec.run_threads(
                make.get(case, make["threads"]), 2,
                bench_nvdec.python_load(20, 100) if case == "threads+python" else None)
        # every session reads every frame after its warm-up, once
        assert r["frames"] == 2 * (24 - bench_nvdec.WARMUP), case
        assert r["fps"] > 0 and r["session_fps_min"] <= r["session_fps_max"], case


def test_the_own_stream_reader_copies_what_nvdec_source_reads(tmp_path):
    why = gpu_unavailable_reason()
    if why:
        pytest.skip("needs a CUDA GPU with NVDEC: %s" % why)
    from trtssd.io.nvdec import unavailable_reason
    why = unavailable_reason()
    if why:
        pytest.skip(why)
    clip = clips.clip("bench-160x96", tmp_path)
    from benchmarks import bench_nvdec
    ref = bench_nvdec.SourceReader(clip)
    try:
        want = []
        for _ in range(3):
            f = ref.src.read()
            with ref.src._cc.active():
                want.append(f.image.copy_to_host())
            f.done()
    finally:
        ref.close()
    for high in (False, True):
        r = bench_nvdec.OwnStreamReader(clip, high)
        try:
            for k in range(3):
                with r.cc.active():
                    r.buf.fill_bytes(0x5A)            # poisoned before each picture
                assert r.step()
                with r.cc.active():
                    got = r.buf.copy_to_host()
                assert (got == want[k]).all(), (high, k)
        finally:
            r.close()
