"""Sinks: the exact JSON lines shape, video and image outputs, open_sink's dispatch, drawing
once per frame, and a clear error for a window where there is no screen."""
import json
import os

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from trtssd.core.detections import Detections, LabelMap  # noqa: E402
from trtssd.core.errors import EnvironmentProblem, InputError  # noqa: E402
from trtssd.io import sinks as K  # noqa: E402
from trtssd.io.sources import Frame  # noqa: E402


def dets(with_names=True):
    boxes = np.array([[10.25, 20.5, 60.75, 90.125], [0, 0, 5, 5]], np.float32)
    return Detections(boxes, np.array([0.91234567, 0.5], np.float32), np.array([1, 17]),
                      ["person", "cat"] if with_names else None)


def frame(index=3, h=101, w=131, source="cam"):
    return Frame(index, np.full((h, w, 3), 40, np.uint8), source, 0.0)


def test_json_lines_exact_shape(tmp_path):
    path = str(tmp_path / "out.jsonl")
    labels = LabelMap(["???", "person"] + ["x%d" % i for i in range(2, 17)] + ["cat"])
    with K.open_sink(path, labels=labels) as sink:
        assert isinstance(sink, K.JsonLinesSink)
        sink.write(frame(3), dets(with_names=False))
        sink.write(frame(4), Detections.empty())
        sink.write(frame(5, source="other"), dets(with_names=True))
    lines = open(path).read().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first == {"source": "cam", "frame": 3, "detections": [
        {"box": [10.25, 20.5, 60.75, 90.12], "score": 0.91235, "class_id": 1, "label": "person"},
        {"box": [0.0, 0.0, 5.0, 5.0], "score": 0.5, "class_id": 17, "label": "cat"}]}
    assert list(first) == ["source", "frame", "detections"]
    assert list(first["detections"][0]) == ["box", "score", "class_id", "label"]
    assert json.loads(lines[1]) == {"source": "cam", "frame": 4, "detections": []}
    assert json.loads(lines[2])["source"] == "other"
    assert [d["label"] for d in json.loads(lines[2])["detections"]] == ["person", "cat"]


def test_json_lines_without_labels_names_the_class_id(tmp_path):
    path = str(tmp_path / "o.jsonl")
    with K.open_sink(path) as sink:
        sink.write(frame(0), dets(with_names=False))
    rec = json.loads(open(path).readline())
    assert [d["label"] for d in rec["detections"]] == ["1", "17"]


def test_video_sink_writes_every_frame(tmp_path):
    path = str(tmp_path / "out.avi")
    with K.open_sink(path, fps=10) as sink:
        assert isinstance(sink, K.VideoSink) and sink.draws
        for i in range(4):
            f = frame(i, 96, 128)
            sink.write(f, dets())
            assert f.annotated is not None
            assert not np.all(f.image == 40)             # boxes were drawn on the picture
        with pytest.raises(InputError, match="one size"):
            sink.write(frame(9, 50, 50), dets())
    cap = cv2.VideoCapture(path)
    n = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (96, 128, 3)
        n += 1
    cap.release()
    assert n == 4


def test_image_folder_and_tee_draw_once(tmp_path, monkeypatch):
    from trtssd.io import draw
    folder = str(tmp_path / "imgs")
    calls = []
    real = draw.draw_detections

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(draw, "draw_detections", counting)
    with K.open_sink([folder, str(tmp_path / "b.avi")]) as tee:
        assert isinstance(tee, K.TeeSink) and tee.draws
        f = frame(7, source="rtsp://cam/1")
        tee.write(f, dets())
    assert len(calls) == 1                        # two drawing sinks, one drawing
    files = os.listdir(folder)
    assert files == ["rtsp___cam_1_000007.jpg"]
    img = cv2.imread(os.path.join(folder, files[0]))
    assert img.shape == (101, 131, 3)


def test_open_sink_dispatch(tmp_path):
    assert isinstance(K.open_sink(None), K.NullSink)
    assert isinstance(K.open_sink("null"), K.NullSink)
    K.NullSink().write(frame(), dets())
    with pytest.raises(InputError, match="unknown kind"):
        K.open_sink(str(tmp_path / "x.xyz"))
    with pytest.raises(InputError, match="does not exist"):
        K.open_sink(str(tmp_path / "no" / "x.jsonl"))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        K.ImageFolderSink(str(f))


def test_window_without_a_screen_is_a_clear_error(monkeypatch):
    if os.name != "posix":
        pytest.skip("the DISPLAY check is for X11/Wayland systems")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(EnvironmentProblem, match="--output"):
        K.open_sink("window")


def test_annotate_draws_on_a_copy_of_a_read_only_frame():
    # a synthetic source's ring buffers are shared by every frame that shows the same
    # picture: drawing must not write into them
    shared = np.full((96, 128, 3), 40, np.uint8)
    ro = shared.view()
    ro.flags.writeable = False
    f = Frame(0, ro, "ring")
    img = K.annotate(f, dets())
    assert img is f.annotated and img is not ro and img.flags.writeable
    assert not np.all(img == 40)                           # boxes drawn on the copy
    assert np.all(shared == 40)                            # the shared buffer untouched
    assert K.annotate(f, dets()) is img                    # once per frame
    w = Frame(1, np.full((96, 128, 3), 40, np.uint8), "pool")
    assert K.annotate(w, dets()) is w.image                # writable: in place


def test_files_appear_only_when_complete(tmp_path):
    path = str(tmp_path / "d.jsonl")
    sink = K.open_sink(path)
    sink.write(frame(0), dets())
    assert not os.path.exists(path)                       # under its temporary name
    assert os.listdir(str(tmp_path)) == [".d.partial.jsonl"]
    sink.close()
    assert os.listdir(str(tmp_path)) == ["d.jsonl"] and len(open(path).readlines()) == 1
    failed = K.open_sink(str(tmp_path / "e.jsonl"))
    failed.write(frame(0), dets())
    failed.failed = True                                  # as a failed write marks it
    failed.close()
    assert sorted(os.listdir(str(tmp_path))) == ["d.jsonl"]   # nothing half-written kept


def test_stdout_schemes_and_write_errors(tmp_path, capsys):
    import errno
    with K.open_sink("-") as sink:
        sink.write(frame(2), dets())
    assert json.loads(capsys.readouterr().out)["frame"] == 2
    with pytest.raises(InputError, match=r"known: file://"):
        K.open_sink("kafka://broker/topic")
    assert isinstance(K.open_sink("file://" + str(tmp_path / "f.jsonl")), K.JsonLinesSink)
    e = K.describe_os_error("/x/d.jsonl", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(e, K.SinkError) and "no space" in str(e) and "/x/d.jsonl" in str(e)
    e = K.describe_os_error("-", BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert "closed the pipe" in str(e) and "stdout" in str(e)


def test_select_sink_keeps_named_classes():
    got = []

    class Keep(K.Sink):
        def write(self, f, d):
            got.append(d)
    s = K.SelectSink(Keep(), {17})
    s.write(frame(0), dets())
    assert list(got[0].class_ids) == [17] and got[0].labels == ["cat"]


def test_picture_names_keep_the_input_name(tmp_path):
    sink = K.ImageFolderSink(str(tmp_path / "o"))
    sink.write(frame(0, source="/a/cat.png"), dets())
    sink.write(frame(1, source="/b/cat.png"), dets())      # same name, other folder
    sink.write(frame(2, source="/a/cat.png"), dets())      # the same picture again (--loop)
    assert sorted(os.listdir(str(tmp_path / "o"))) == ["cat.png", "cat_1.png"]
