"""Which drawing runs where: the style the GPU slots draw with is the drawing sink's (labels,
overlay, the class filter in front of it), and Delivery draws writable host frames in place,
read-only ones on a copy, and leaves a picture a GPU slot made alone, saying in the run's
notes which of these ran. The GPU path itself: test_draw_gpu.py (pipeline test at its end).
"""
import numpy as np
import pytest

from trtssd.core.detections import Detections
from trtssd.core.stats import RunStats
from trtssd.io.sinks import NullSink, SelectSink, Sink, TeeSink, annotate
from trtssd.io.sources import Frame
from trtssd.pipeline import PipelineOptions
from trtssd.pipeline.base import Delivery, draw_style

pytest.importorskip("cv2", reason="drawing needs OpenCV (opencv-python-headless)")


class Drawing(Sink):
    draws = True

    def __init__(self, labels=None, overlay=None):
        self.labels, self.overlay, self.pictures = labels, overlay, []

    def write(self, frame, detections):
        self.pictures.append(annotate(frame, detections, self.labels, self.overlay))


def test_style_is_the_drawing_sinks():
    assert draw_style(NullSink(), PipelineOptions()) is None
    s = draw_style(NullSink(), PipelineOptions(draw=True))
    assert s.labels is None and s.overlay is None and s.class_ids is None
    inner = Drawing(labels=["a", "b"], overlay="box")
    tee = TeeSink([NullSink(), SelectSink(inner, [3, 1])])
    s = draw_style(tee, PipelineOptions())
    assert s.labels == ["a", "b"] and s.overlay == "box" and list(s.class_ids) == [1, 3]
    s = draw_style(SelectSink(SelectSink(inner, [1, 2, 3]), [3, 4]), PipelineOptions())
    assert list(s.class_ids) == [3]


def frame_of(img):
    return Frame(0, img, "s")


def test_delivery_draws_in_place_on_a_copy_or_not_at_all():
    rng = np.random.default_rng(0)
    det = Detections([[10, 10, 60, 50]], [0.9], [2], ["car"])
    stats = RunStats(mode="t")
    deliver = Delivery(NullSink(), stats, PipelineOptions(draw=True))
    writable = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    f = frame_of(writable)
    deliver(f, det)
    assert f.annotated is writable                  # in place, no copy
    ro = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    before = ro.copy()
    ro.flags.writeable = False
    f = frame_of(ro)
    deliver(f, det)
    assert f.annotated is not ro and not np.array_equal(f.annotated, before)
    np.testing.assert_array_equal(ro, before)
    gpu_made = np.zeros((80, 90, 3), np.uint8)      # as a GPU slot leaves it
    f = frame_of(ro)
    f.annotated = gpu_made
    deliver(f, det)
    assert f.annotated is gpu_made and not gpu_made.any()
    notes = [n for n in stats.notes if n.startswith("frames drawn")]
    assert notes == ["frames drawn on the CPU in place",
                     "frames drawn on the CPU on a copy of the read-only frame",
                     "frames drawn on the GPU into the device frame, then downloaded"]
    assert stats.frames == 3 and len(stats.stage_ms["draw"]) == 3


def test_undrawn_delivery_neither_draws_nor_times():
    stats = RunStats(mode="t")
    deliver = Delivery(NullSink(), stats, PipelineOptions())
    img = np.zeros((20, 20, 3), np.uint8)
    f = frame_of(img)
    deliver(f, Detections([[1, 1, 10, 10]], [0.9], [1]))
    assert f.annotated is None and not img.any() and not stats.stage_ms["draw"]
    assert not stats.notes
