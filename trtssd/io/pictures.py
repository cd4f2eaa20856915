"""Many picture files as one stream: folders, globs and lists of files, read one at a time.

``trtssd detect photos/ 'shots/*.jpg' a.png`` treats every picture it names as one source
(``PictureSource``), as jetson-inference's ``detectnet`` and Ultralytics' ``yolo predict`` do:
one picture is decoded at a time, so memory stays flat whatever their number, and each
frame's ``source_id`` is the picture's own path (the JSON lines and the annotated files name
it). Several cameras or streams stay several sources (the ``multi`` mode).

A picture that cannot be decoded, or a JPEG cut short (no end-of-image marker: libjpeg fills
the missing rows with grey and OpenCV does not say so), is skipped with a warning naming the
file; ``damaged`` counts them.
"""
import glob
import os
import time

from ..core.errors import InputError
from .sources import IMAGE_EXTENSIONS, Frame, Source, _cv2

GLOB_CHARS = "*?["


def is_picture(path):
    return os.path.splitext(str(path).lower())[1] in IMAGE_EXTENSIONS


def _folder_pictures(folder):
    names = sorted(n for n in os.listdir(folder) if is_picture(n))
    return [os.path.join(folder, n) for n in names
            if os.path.isfile(os.path.join(folder, n))]


def expand_pictures(text):
    """The picture files ``text`` names (a folder: its pictures, sorted; a glob: its matches,
    sorted; a picture file: itself), or None when ``text`` names no pictures at all (a video,
    a camera, a stream). A folder or glob with no picture in it is an InputError."""
    s = str(text)
    if os.path.isdir(s):
        found = _folder_pictures(s)
        if not found:
            raise InputError("folder %r holds no picture (%s); give a folder of pictures, or "
                             "name a video file itself" % (s, " ".join(IMAGE_EXTENSIONS)))
        return found
    if any(c in s for c in GLOB_CHARS) and "://" not in s and not s.startswith("gst:"):
        matches = sorted(glob.glob(s))
        found = []
        for m in matches:
            if os.path.isdir(m):
                found.extend(_folder_pictures(m))
            elif is_picture(m) and os.path.isfile(m):
                found.append(m)
        if not found:
            raise InputError("%r matches no picture file; check the pattern (quote it so the "
                             "shell does not expand it) or give the files" % s)
        return found
    if is_picture(s):
        return [s]
    return None


def _jpeg_complete(path):
    """False if a JPEG file lacks its end-of-image marker (FF D9), i.e. was cut short."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read().rstrip(b"\x00")
    except OSError:
        return False
    return tail.endswith(b"\xff\xd9")


class PictureSource(Source):
    """Picture files as one stream, in the order given, ``loop`` times (``None``: endlessly).
    Not live: every picture gets its result. ``width``/``height`` are 0 (pictures may differ
    in size), so the pipeline decodes each into a new array rather than a pooled buffer.
    ``damaged`` counts the pictures skipped because they could not be decoded; ``warn`` is
    called with a one-line message for each (default: written to stderr)."""

    def __init__(self, paths, loop=1, source_id=None, warn=None):
        Source.__init__(self)
        _cv2()
        self.paths = [str(p) for p in paths]
        if not self.paths:
            raise InputError("no picture given; name picture files, a folder or a glob")
        for p in self.paths:
            if not os.path.isfile(p):
                raise InputError("image file %r does not exist; give the path of a .jpg/.png "
                                 "file, a folder of pictures or a glob" % p)
        if loop is not None and int(loop) < 1:
            raise InputError("--loop %r: pictures must be given at least once" % (loop,))
        self._loop = None if loop is None else int(loop)
        self.source_id = source_id or (self.paths[0] if len(self.paths) == 1
                                       else "%d pictures" % len(self.paths))
        self.frame_count = None if loop is None else len(self.paths) * self._loop
        self.damaged = 0
        self.damaged_names = self.warnings      # one message a skipped picture
        self._warn = warn
        self._pos = 0
        self.width = self.height = 0
        self.fps = None

    def read(self, out=None):
        cv2 = _cv2()
        n = len(self.paths)
        while not self._closed:
            if self._loop is not None and self._pos >= n * self._loop:
                return None
            k = self._pos % n
            self._pos += 1
            path = self.paths[k]
            t = time.perf_counter()
            # checked before decoding: libjpeg would decode a cut JPEG with grey rows
            if path.lower().endswith((".jpg", ".jpeg")) and not _jpeg_complete(path):
                self.damaged += 1
                self._say("picture %d (%s) is a truncated JPEG (no end marker); skipped"
                          % (k, path))
                continue
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                self.damaged += 1
                self._say("picture %d (%s) cannot be decoded; skipped" % (k, path))
                continue
            f = Frame(self._next_index, img, path, t)
            self._next_index += 1
            return f
        return None
