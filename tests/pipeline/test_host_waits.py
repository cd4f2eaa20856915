"""The events the host waits on are made without timing and without blocking synchronisation
(host_wait_event): a slot's done and drawn events, its preprocessor's and postprocessor's and
the GPU drawer's: a waiting thread spins (why: benchmarks/NOTES_pipeline.md, round 5).
The no-op driver of benchmarks/_overhead.py keeps each event's flags; its flag values are
pycuda's."""
import pytest


def test_every_event_a_slot_waits_on_spins_untimed(tflite_model, monkeypatch):
    import benchmarks.bench_host as bh
    from benchmarks._overhead import noop_driver
    from trtssd.models.resolve import load_spec, onnx_for
    monkeypatch.setenv("TRTSSD_MODEL", tflite_model)
    spec = load_spec(onnx_for(tflite_model))
    with noop_driver() as drv:
        want = drv.event_flags.DISABLE_TIMING
        assert want == 2
        call, slot = bh.slot_case(spec)
        try:
            call()                                         # a frame through it
            waited = {"done": slot.done, "postprocess": slot.post._event}
            waited.update(("preprocess %d" % k, ev) for k, ev in enumerate(slot.pre._events))
            assert {k: ev.flags for k, ev in waited.items()} == {k: want for k in waited}
        finally:
            slot.close()


def test_the_gpu_drawer_waits_on_untimed_spinning_events():
    pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")
    from benchmarks._overhead import noop_driver
    from trtssd.io.draw_gpu import GpuDrawer
    with noop_driver() as drv:
        drawer = GpuDrawer(ring=3)
        try:
            assert [ev.flags for ev in drawer._events] == [2, 2, 2]
        finally:
            drawer.close()
