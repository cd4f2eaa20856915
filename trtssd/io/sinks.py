"""Where results go: a window, a video file, image files, JSON lines of detections, or nowhere.

A sink has ``write(frame, detections)`` and ``close()`` and is a context manager.
``open_sink(path_or_none, labels=None)`` picks one from the output's name:
``None``/``""``/``"null"`` -> nothing, ``*.jsonl``/``*.json`` -> JSON lines, ``*.mp4``/``*.avi``/
``*.mkv`` -> annotated video, ``window``/``:window`` -> a window, anything else -> a folder of
annotated images. Drawing sinks draw on ``frame.image`` itself, or on a copy of a read-only
frame (once per frame, shared by several sinks through ``frame.annotated``).

JSON lines, one object per frame, boxes in pixels of the original frame:
``{"source": ..., "frame": N, "detections": [{"box": [x1, y1, x2, y2], "score": S,
"class_id": C, "label": "name"}]}``.
"""
import json
import os
import time

import numpy as np

from ..core.env import import_cv2
from ..core.errors import EnvironmentProblem, InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")
JSON_EXTENSIONS = (".jsonl", ".json", ".ndjson")


_cv2 = import_cv2


def _label_of(det, i, labels):
    names = getattr(det, "labels", None)
    if names is not None and i < len(names) and names[i] is not None:
        return str(names[i])
    cid = int(det.class_ids[i])
    if labels is not None:
        try:
            name = labels[cid]
            if name is not None:
                return str(name)
        except (IndexError, KeyError, TypeError):
            pass
    return str(cid)


def detection_dicts(det, labels=None):
    """The ``detections`` list of one JSON line: box (x1, y1, x2, y2) in frame pixels, score,
    class id and label name."""
    out = []
    if det is None:
        return out
    boxes = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(det.scores, dtype=np.float64).reshape(-1)
    for i in range(len(scores)):
        out.append({"box": [round(float(v), 2) for v in boxes[i]],
                    "score": round(float(scores[i]), 5),
                    "class_id": int(det.class_ids[i]),
                    "label": _label_of(det, i, labels)})
    return out


def annotate(frame, detections, labels=None):
    """Draw the detections on ``frame.image`` in place, or on a copy when the frame is
    read-only (a buffer shared with other frames, e.g. a synthetic source's pinned ring);
    once per frame: later calls return the same picture."""
    if frame.annotated is not None:
        return frame.annotated
    img = frame.image
    if not img.flags.writeable:
        img = img.copy()
    try:
        from . import draw as _draw
        fn = getattr(_draw, "draw_detections", None)
    except ImportError:
        fn = None
    if fn is not None:
        res = fn(img, detections, labels=labels) if labels is not None else fn(img, detections)
        img = res if isinstance(res, np.ndarray) else img
    else:
        _draw_simple(img, detections, labels)
    frame.annotated = img
    return img


def _draw_simple(img, det, labels):
    """Boxes and labels with OpenCV, used while trtssd.io.draw is absent."""
    cv2 = _cv2()
    if det is None:
        return
    boxes = np.asarray(det.boxes).reshape(-1, 4)
    for i in range(len(boxes)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 0), 2)
        text = "%s %.2f" % (_label_of(det, i, labels), float(det.scores[i]))
        cv2.putText(img, text, (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 255, 0), 1, cv2.LINE_AA)


class Sink(object):
    """Base class. ``draws``: whether this sink needs the annotated picture."""
    draws = False

    def write(self, frame, detections):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NullSink(Sink):
    """Throws results away (benchmarks)."""

    def write(self, frame, detections):
        pass


class JsonLinesSink(Sink):
    """One JSON object per frame (see the module docstring), flushed per line."""

    def __init__(self, path, labels=None):
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise InputError("cannot write %r: the folder %r does not exist; create it first"
                             % (path, d))
        self.path = path
        self.labels = labels
        self._f = open(path, "w")

    def write(self, frame, detections):
        rec = {"source": frame.source_id, "frame": int(frame.index),
               "detections": detection_dicts(detections, self.labels)}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


class VideoSink(Sink):
    """Annotated frames into a video file (.mp4 as mp4v, .avi as MJPG, .mkv/.mov as mp4v).
    The writer opens on the first frame, at that frame's size; every frame must have it."""
    draws = True

    def __init__(self, path, fps=30.0, labels=None):
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise InputError("cannot write %r: the folder %r does not exist; create it first"
                             % (path, d))
        _cv2()
        self.path, self.fps, self.labels = path, float(fps or 30.0), labels
        self._writer = None
        self._size = None

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels)
        size = (img.shape[1], img.shape[0])
        if self._writer is None:
            ext = os.path.splitext(self.path)[1].lower()
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v"))
            self._writer = cv2.VideoWriter(self.path, fourcc, self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                raise EnvironmentProblem("OpenCV cannot write the video %r; try .avi (MJPG) or "
                                         "a folder of images instead" % self.path)
            self._size = size
        elif size != self._size:
            raise InputError("frame %d of %r is %dx%d but the video %r is %dx%d; a video file "
                             "takes one size (write several sources to a folder instead)"
                             % (frame.index, frame.source_id, size[0], size[1], self.path,
                                self._size[0], self._size[1]))
        self._writer.write(np.ascontiguousarray(img))

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _safe_name(text):
    keep = [c if (c.isalnum() or c in "-_.") else "_" for c in str(text)]
    return "".join(keep).strip("._")[-60:] or "source"


class ImageFolderSink(Sink):
    """Annotated frames as ``FOLDER/<source>_<frame>.jpg`` (created if missing)."""
    draws = True

    def __init__(self, folder, labels=None, ext=".jpg"):
        _cv2()
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise InputError("output %r exists and is not a folder; give a folder, a .jsonl, "
                             "an .mp4/.avi or 'window'" % folder)
        if not os.path.isdir(folder):
            os.makedirs(folder)
        self.folder, self.labels, self.ext = folder, labels, ext

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels)
        path = os.path.join(self.folder, "%s_%06d%s" % (_safe_name(frame.source_id),
                                                        frame.index, self.ext))
        if not cv2.imwrite(path, img):
            raise EnvironmentProblem("cannot write %r; check the folder's permissions and free "
                                     "space" % path)


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window with an FPS overlay. Pressing q or Esc
    raises KeyboardInterrupt, which the pipeline takes as a clean stop."""
    draws = True

    def __init__(self, title="trtssd", labels=None):
        cv2 = _cv2()
        if os.name == "posix" and not (os.environ.get("DISPLAY") or
                                       os.environ.get("WAYLAND_DISPLAY")):
            raise EnvironmentProblem("--display needs a screen, and this session has none "
                                     "(DISPLAY is not set); write the results to a file with "
                                     "--output instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise EnvironmentProblem("OpenCV cannot open a window (%s); the pip package "
                                     "opencv-python-headless has no GUI: install opencv-python, "
                                     "or use --output instead" % str(e).strip().splitlines()[-1])
        self.title, self.labels = title, labels
        self._times = []
        self._open = True

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels)
        now = time.perf_counter()
        self._times.append(now)
        self._times = [t for t in self._times if now - t <= 1.0]
        fps = (len(self._times) - 1) / (now - self._times[0]) if len(self._times) > 1 else 0.0
        cv2.putText(img, "%.1f FPS" % fps, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(img, "%.1f FPS" % fps, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            raise KeyboardInterrupt("window closed with q/Esc")

    def close(self):
        if self._open:
            self._open = False
            try:
                _cv2().destroyWindow(self.title)
            except Exception:
                pass


class TeeSink(Sink):
    """Several sinks, each given every result; closes them all."""

    def __init__(self, sinks):
        self.sinks = list(sinks)
        self.draws = any(s.draws for s in self.sinks)

    def write(self, frame, detections):
        for s in self.sinks:
            s.write(frame, detections)

    def close(self):
        err = None
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:   # close every sink, then report the first failure
                err = err or e
        if err is not None:
            raise err


def open_sink(path_or_none, labels=None, fps=30.0):
    """A sink from an output's name (see the module docstring). A Sink is returned unchanged;
    a list gives a TeeSink."""
    if isinstance(path_or_none, Sink):
        return path_or_none
    if isinstance(path_or_none, (list, tuple)):
        return TeeSink([open_sink(p, labels, fps) for p in path_or_none])
    if path_or_none is None or path_or_none in ("", "null", "none"):
        return NullSink()
    p = str(path_or_none)
    if p in ("window", ":window"):
        return WindowSink(labels=labels)
    ext = os.path.splitext(p)[1].lower()
    if ext in JSON_EXTENSIONS:
        return JsonLinesSink(p, labels)
    if ext in VIDEO_EXTENSIONS:
        return VideoSink(p, fps=fps, labels=labels)
    if ext and not os.path.isdir(p):
        raise InputError("output %r: unknown kind %r; write .jsonl (detections), .mp4/.avi "
                         "(annotated video), a folder (annotated images) or 'window'" % (p, ext))
    return ImageFolderSink(p, labels)
