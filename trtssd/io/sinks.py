"""Where results go: a window, a video file, image files, JSON lines of detections, or nowhere.

A sink has ``write(frame, detections)`` and ``close()`` and is a context manager.
``open_sink(path_or_none, labels=None, fps=30.0, overlay=None)`` picks one from the output's
name: ``None``/``""``/``"null"`` -> nothing, ``-`` -> JSON lines on stdout,
``*.jsonl``/``*.json``/``*.ndjson`` -> JSON lines, ``*.mp4``/``*.avi``/``*.mkv``/``*.mov`` ->
annotated video, ``window``/``:window`` -> a window, ``SCHEME://...`` -> the sink registered
for that scheme in ``SINK_SCHEMES`` (an unknown scheme is an error naming the known ones),
anything else -> a folder of annotated images. Drawing sinks draw on ``frame.image`` itself,
or on a copy of a read-only frame (once per frame, shared by several sinks through
``frame.annotated``); ``overlay`` says what is drawn (see trtssd.io.draw.OVERLAYS).

Nothing half-written is passed off as complete: files are written under a temporary name
beside the target (``.NAME.partial.EXT``) and renamed to it by ``close()``; a sink whose write
failed removes its temporary file instead. A write that fails (a read-only folder, a full
disk, a reader that closed the pipe) raises SinkError naming the path and the fix. Special
files (``/dev/stdout``, a FIFO, ``/dev/full``) are written directly.

JSON lines, one object per frame, boxes in pixels of the original frame:
``{"source": ..., "frame": N, "detections": [{"box": [x1, y1, x2, y2], "score": S,
"class_id": C, "label": "name"}]}``.
"""
import errno
import json
import os
import sys
import time

import numpy as np

from ..core.closeable import Closeable
from ..core.env import import_cv2
from ..core.errors import EnvironmentProblem, InputError, TrtssdError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")
JSON_EXTENSIONS = (".jsonl", ".json", ".ndjson")

def _mqtt_sink(url, labels=None, **_):
    from .mqtt import open_mqtt_sink
    return open_mqtt_sink(url, labels)


# scheme -> "module:callable" (imported on first use) or a callable
# ``factory(url, labels=..., fps=..., overlay=...) -> Sink``; other modules register theirs
SINK_SCHEMES = {"mqtt": _mqtt_sink, "mqtts": _mqtt_sink}


class SinkError(TrtssdError):
    """An output could not be written: names the path and the fix."""


def describe_os_error(path, e):
    """A one-line SinkError for an OSError while writing ``path``."""
    code = getattr(e, "errno", None)
    where = "stdout" if path == "-" else repr(path)
    if code == errno.EPIPE or isinstance(e, BrokenPipeError):
        return SinkError("the reader of %s closed the pipe; keep the reader open until trtssd "
                         "ends (or write to a file with -o FILE.jsonl)" % where)
    if code == errno.ENOSPC:
        return SinkError("no space left on the device while writing %s; free some space or "
                         "write elsewhere with -o" % where)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SinkError("cannot write %s: %s; write to a folder you may write to (-o) or fix "
                         "its permissions" % (where, e.strerror or e))
    return SinkError("cannot write %s: %s; check the path and free space"
                     % (where, getattr(e, "strerror", None) or e))


def _is_special(path):
    """True for an existing file that is not a regular one (a device, a FIFO, a socket)."""
    try:
        import stat
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _partial_name(path):
    d, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(d, ".%s.partial%s" % (stem, ext))


def _check_folder(path):
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise InputError("cannot write %r: the folder %r does not exist; create it first"
                         % (path, d))
    if not os.access(d, os.W_OK):
        raise SinkError("cannot write %r: the folder %r is not writable; write to a folder you "
                        "may write to (-o) or fix its permissions" % (path, d))


_cv2 = import_cv2


def detection_dicts(det, labels=None):
    """The ``detections`` list of one JSON line (Detections.to_dicts), a class with no name
    named by its id."""
    if det is None:
        return []
    out = det.to_dicts(labels)
    for d in out:
        if d["label"] is None:
            d["label"] = str(d["class_id"])
    return out


def frame_record(frame, detections, labels=None):
    """One frame's record (a JSON line, an MQTT message, a Parquet row): source, frame, and
    the ``detection_dicts``."""
    return {"source": frame.source_id, "frame": int(frame.index),
            "detections": detection_dicts(detections, labels)}


def annotate(frame, detections, labels=None, overlay=None):
    """Draw the detections on ``frame.image`` in place, or on a copy when the frame is
    read-only (a buffer shared with other frames, e.g. a synthetic source's pinned ring);
    once per frame: later calls return the same picture. ``overlay``: what to draw
    (trtssd.io.draw.OVERLAYS; default boxes, labels and scores)."""
    if frame.annotated is not None:
        return frame.annotated
    from .draw import draw_detections
    img = frame.image
    if not img.flags.writeable or not img.flags.c_contiguous:
        img = np.ascontiguousarray(img).copy()
    if detections is not None:
        draw_detections(img, detections, labels=labels, overlay=overlay)
    frame.annotated = img
    return img


class Sink(Closeable):
    """Base class. ``draws``: whether this sink needs the annotated picture. ``written``:
    frames written; ``failed``: a write failed (``close()`` then keeps nothing half-done)."""
    draws = False
    written = 0
    failed = False

    def write(self, frame, detections):
        raise NotImplementedError

    def close(self):
        pass



class NullSink(Sink):
    """Throws results away (benchmarks)."""

    def write(self, frame, detections):
        self.written += 1


class _AtomicFile(object):
    """A target path written under a temporary name and renamed on ``commit()`` (a special
    file such as /dev/full or a FIFO is written directly)."""

    def __init__(self, path):
        self.path = path
        self.direct = _is_special(path)
        self.tmp = path if self.direct else _partial_name(path)

    def commit(self):
        if not self.direct and os.path.exists(self.tmp):
            os.replace(self.tmp, self.path)

    def discard(self):
        if not self.direct:
            try:
                os.remove(self.tmp)
            except OSError:
                pass


class JsonLinesSink(Sink):
    """One JSON object per frame (see the module docstring), flushed per line. ``path`` "-"
    writes to stdout (or pass ``stream``)."""

    def __init__(self, path, labels=None, stream=None):
        self.path = path
        self.labels = labels
        self._file = None
        if stream is not None or path == "-":
            self._f = stream if stream is not None else sys.stdout
            self._own = False
            return
        _check_folder(path)
        self._file = _AtomicFile(path)
        try:
            self._f = open(self._file.tmp, "w")
        except OSError as e:
            raise describe_os_error(path, e)
        self._own = True

    def write(self, frame, detections):
        try:
            self._f.write(json.dumps(frame_record(frame, detections, self.labels)) + "\n")
            self._f.flush()
        except (OSError, ValueError) as e:
            self.failed = True
            if isinstance(e, ValueError):      # a closed stream
                raise SinkError("cannot write %s: the stream was closed" % self.path)
            raise describe_os_error(self.path, e)
        self.written += 1

    def close(self):
        f, self._f = self._f, None
        if f is None:
            return
        if not self._own:
            if not self.failed:
                try:
                    f.flush()
                except OSError as e:
                    self.failed = True
                    raise describe_os_error(self.path, e)
            return
        try:
            f.close()
        except OSError as e:
            was_failed, self.failed = self.failed, True
            self._file.discard()
            if was_failed:        # the write already reported it
                return
            raise describe_os_error(self.path, e)
        if self.failed:
            self._file.discard()
        else:
            self._file.commit()


class VideoSink(Sink):
    """Annotated frames into a video file (.mp4 as mp4v, .avi as MJPG, .mkv/.mov as mp4v).
    The writer opens on the first frame, at that frame's size; every frame must have it.
    ``close()`` releases the writer (which writes the container's index), reads the file
    back to check that it holds every frame, and only then renames it into place: OpenCV's
    writer does not report a failed write (a full disk), so the check is what catches it."""
    draws = True

    def __init__(self, path, fps=30.0, labels=None, overlay=None):
        _check_folder(path)
        _cv2()
        self.path, self.fps, self.labels, self.overlay = path, float(fps or 30.0), labels, overlay
        self._file = _AtomicFile(path)
        self._writer = None
        self._size = None

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels, self.overlay)
        size = (img.shape[1], img.shape[0])
        if self._writer is None:
            ext = os.path.splitext(self.path)[1].lower()
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v"))
            self._writer = cv2.VideoWriter(self._file.tmp, fourcc, self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                self.failed = True
                self._file.discard()
                raise SinkError("OpenCV cannot write the video %r (its FFmpeg has no %s writer "
                                "here, or the file cannot be made); write .avi (MJPG) or a "
                                "folder of images instead" % (self.path, ext or "such"))
            self._size = size
        elif size != self._size:
            raise InputError("frame %d of %r is %dx%d but the video %r is %dx%d; a video file "
                             "takes one size (write several sources to a folder instead)"
                             % (frame.index, frame.source_id, size[0], size[1], self.path,
                                self._size[0], self._size[1]))
        self._writer.write(np.ascontiguousarray(img))
        self.written += 1

    def _frames_in(self, path):
        cv2 = _cv2()
        cap = cv2.VideoCapture(path)
        try:
            if not cap.isOpened():
                return 0
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if n <= 0:         # no count in the container: read it through
                while cap.grab():
                    n += 1
            return n
        finally:
            cap.release()

    def close(self):
        w, self._writer = self._writer, None
        if w is None:
            return
        w.release()
        if self.failed:
            self._file.discard()
            return
        if self._file.direct:
            got = self.written if not os.path.isfile(self.path) else self._frames_in(self.path)
        else:
            got = self._frames_in(self._file.tmp)
        if got < self.written:
            self.failed = True
            self._file.discard()
            raise SinkError("the video %r could not be completed (%d of %d frames readable "
                            "back: a full disk, or a device that takes no video); free some "
                            "space or write elsewhere with -o" % (self.path, got, self.written))
        try:
            self._file.commit()
        except OSError as e:
            self.failed = True
            self._file.discard()
            raise describe_os_error(self.path, e)


def _safe_name(text):
    keep = [c if (c.isalnum() or c in "-_.") else "_" for c in str(text)]
    return "".join(keep).strip("._")[-60:] or "source"


class ImageFolderSink(Sink):
    """Annotated frames as image files in FOLDER (created if missing). A frame from a picture
    file keeps that file's name and extension (``photos/cat.png`` -> ``FOLDER/cat.png``; a
    second file of the same name gets ``_1``, ``_2`` ...); a frame of a video or camera is
    ``FOLDER/<source>_<frame>.jpg``. Each file is written under a temporary name, then
    renamed."""
    draws = True

    def __init__(self, folder, labels=None, ext=".jpg", overlay=None):
        _cv2()
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise InputError("output %r exists and is not a folder; give a folder, a .jsonl, "
                             "an .mp4/.avi or 'window'" % folder)
        if not os.path.isdir(folder):
            try:
                os.makedirs(folder)
            except OSError as e:
                raise describe_os_error(folder, e)
        self.folder, self.labels, self.ext, self.overlay = folder, labels, ext, overlay
        self._names = {}
        self._counts = {}

    def _name(self, frame):
        from .sources import IMAGE_EXTENSIONS
        sid = str(frame.source_id)
        base = os.path.basename(sid)
        stem, ext = os.path.splitext(base)
        if ext.lower() not in IMAGE_EXTENSIONS or "://" in sid:
            return "%s_%06d%s" % (_safe_name(sid), frame.index, self.ext)
        name = self._names.get(sid)
        if name is None:            # first time this picture: its name, or name_N if taken
            n = self._counts.get(base.lower(), 0)
            self._counts[base.lower()] = n + 1
            name = base if n == 0 else "%s_%d%s" % (stem, n, ext)
            self._names[sid] = name
        return name

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels, self.overlay)
        name = self._name(frame)
        path = os.path.join(self.folder, name)
        tmp = _partial_name(path)
        ok = False
        try:
            ok = cv2.imwrite(tmp, img)
            if ok:
                os.replace(tmp, path)
        except OSError as e:
            ok = False
            err = e
        else:
            err = None
        if not ok:
            self.failed = True
            try:
                os.remove(tmp)
            except OSError:
                pass
            if err is not None:
                raise describe_os_error(path, err)
            raise SinkError("cannot write %r (OpenCV could not encode or save it); check the "
                            "folder's permissions and free space, or write a .jsonl instead"
                            % path)
        self.written += 1


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window with an FPS overlay. Pressing q or Esc
    raises KeyboardInterrupt, which the pipeline takes as a clean stop."""
    draws = True

    def __init__(self, title="trtssd", labels=None, overlay=None):
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
        self.title, self.labels, self.overlay = title, labels, overlay
        self._times = []
        self._open = True

    def write(self, frame, detections):
        cv2 = _cv2()
        img = annotate(frame, detections, self.labels, self.overlay)
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
        self.written += 1
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

    @property
    def failed(self):
        return any(getattr(s, "failed", False) for s in self.sinks)

    def write(self, frame, detections):
        for s in self.sinks:
            s.write(frame, detections)
        self.written += 1

    def close(self):
        err = None
        for s in self.sinks:
            try:
                s.close()
            except Exception as e:   # close every sink, then report the first failure
                err = err or e
        if err is not None:
            raise err


class SelectSink(Sink):
    """Passes on only the detections whose class id is in ``class_ids`` (``--classes``)."""

    def __init__(self, sink, class_ids):
        self.sink = sink
        self.class_ids = np.asarray(sorted(int(c) for c in class_ids), np.int64)
        self.draws = sink.draws

    @property
    def failed(self):
        return getattr(self.sink, "failed", False)

    def write(self, frame, detections):
        if detections is not None and len(detections):
            detections = detections[np.isin(np.asarray(detections.class_ids), self.class_ids)]
        self.sink.write(frame, detections)
        self.written += 1

    def close(self):
        self.sink.close()


def _scheme(text):
    """The scheme of a URL-looking output (``mqtt`` of ``mqtt://host/topic``), else None."""
    head, sep, _ = text.partition("://")
    if sep and head and head[0].isalpha() and all(c.isalnum() or c in "+-." for c in head):
        return head.lower()
    return None


def _scheme_factory(scheme):
    f = SINK_SCHEMES[scheme]
    if isinstance(f, str):
        import importlib
        mod, _, name = f.partition(":")
        f = getattr(importlib.import_module(mod), name)
    return f


def open_sink(path_or_none, labels=None, fps=30.0, overlay=None):
    """A sink from an output's name (see the module docstring). A Sink is returned unchanged;
    a list gives a TeeSink. ``overlay``: what drawing sinks draw (trtssd.io.draw)."""
    if isinstance(path_or_none, Sink):
        return path_or_none
    if isinstance(path_or_none, (list, tuple)):
        opened = []
        try:
            for p in path_or_none:
                opened.append(open_sink(p, labels, fps, overlay))
        except BaseException:
            for s in opened:
                s.failed = True if not isinstance(s, TeeSink) else s.failed
                try:
                    s.close()
                except Exception:
                    pass
            raise
        return TeeSink(opened)
    if path_or_none is None or path_or_none in ("", "null", "none"):
        return NullSink()
    p = str(path_or_none)
    if p == "-":
        return JsonLinesSink("-", labels)
    if p in ("window", ":window"):
        return WindowSink(labels=labels, overlay=overlay)
    scheme = _scheme(p)
    if scheme is not None:
        if scheme == "file":
            return open_sink(p[len("file://"):], labels, fps, overlay)
        if scheme not in SINK_SCHEMES:
            known = ["file"] + sorted(SINK_SCHEMES)
            raise InputError("output %r: %s:// is not an output trtssd knows (known: %s); "
                             "write a file (.jsonl, .mp4), a folder, - (stdout) or window"
                             % (p, scheme, ", ".join(k + "://" for k in known)))
        return _scheme_factory(scheme)(p, labels=labels, fps=fps, overlay=overlay)
    ext = os.path.splitext(p)[1].lower()
    if ext in JSON_EXTENSIONS:
        return JsonLinesSink(p, labels)
    if ext in VIDEO_EXTENSIONS:
        return VideoSink(p, fps=fps, labels=labels, overlay=overlay)
    if ext and not os.path.isdir(p):
        raise InputError("output %r: unknown kind %r; write .jsonl (detections), .mp4/.avi "
                         "(annotated video), a folder (annotated images), - (stdout) or "
                         "'window'" % (p, ext))
    return ImageFolderSink(p, labels, overlay=overlay)
