"""Sources: image and video files, the synthetic source, open_source's dispatch, and the
error a camera that vanishes mid-run must give."""
import os
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from trtssd.core.errors import EnvironmentProblem, InputError  # noqa: E402
from trtssd.io import sources as S  # noqa: E402


def astronaut():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])   # RGB -> BGR


def make_video(path, frames, fps=10):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def test_image_source_loops_and_copies(tmp_path):
    img = astronaut()[:301, :257]                      # odd size
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, img)
    with S.open_source(path, loop=3) as src:
        assert isinstance(src, S.ImageSource) and not src.live
        assert (src.width, src.height) == (257, 301)
        frames = []
        for k in range(3):
            f = src.read()
            assert f.index == k and f.source_id == path
            assert np.array_equal(f.image, img)
            f.image[:] = 0                              # a sink draws on it...
            frames.append(f)
        assert src.read() is None                       # ...which no later frame shows
    with S.ImageSource(path) as src:
        out = np.full(img.shape, 0xFF, np.uint8)
        f = src.read(out=out)
        assert f.image is out and np.array_equal(out, img)
        assert src.read() is None


@pytest.mark.parametrize("name, data, match", [
    ("missing.jpg", None, "does not exist"),        # None: no file written
    ("bad.png", b"not a png", "cannot decode"),
])
def test_image_source_refuses_a_bad_file(tmp_path, name, data, match):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(InputError, match=match):
        S.open_source(str(path))


def test_image_source_refuses_loop_0(tmp_path):
    good = str(tmp_path / "g.png")
    cv2.imwrite(good, astronaut()[:10, :10])
    with pytest.raises(InputError, match="loop"):
        S.ImageSource(good, loop=0)


def test_video_source_reads_every_frame_in_place(tmp_path):
    rng = np.random.RandomState(1)
    frames = [np.repeat(np.repeat(rng.randint(0, 256, (23, 33, 3)).astype(np.uint8), 2, 0), 2, 1)
              for _ in range(5)]                        # 46x66, blocky so MJPG keeps it
    path = str(tmp_path / "v.avi")
    make_video(path, frames)
    with S.open_source(path) as src:
        assert isinstance(src, S.VideoSource) and not src.live
        assert (src.width, src.height) == (66, 46)
        out = np.full((46, 66, 3), 0xFF, np.uint8)
        got = []
        f = src.read(out=out)
        assert f.image is out                           # decoded into the given buffer
        got.append(f.image.copy())
        while True:
            f = src.read()
            if f is None:
                break
            got.append(f.image.copy())
        assert [g.shape for g in got] == [(46, 66, 3)] * 5
        for a, b in zip(got, frames):
            # MJPG is lossy: mean absolute error of a few levels on blocky random pictures
            assert np.abs(a.astype(int) - b).mean() < 12
        assert src.read() is None


def test_video_source_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        S.open_source(str(tmp_path / "nothing.mp4"))
    p = tmp_path / "text.mp4"
    p.write_text("hello")
    with pytest.raises(InputError, match="cannot open"):
        S.open_source(str(p))


class _FakeCap(object):
    def __init__(self, good):
        self.good = good
        self.released = False

    def read(self, image=None):
        if self.good > 0:
            self.good -= 1
            return True, np.zeros((4, 6, 3), np.uint8)
        return False, None

    def release(self):
        self.released = True


def _capture(good, live):
    src = S.CaptureSource.__new__(S.CaptureSource)
    S.Source.__init__(src)
    src.live, src.width, src.height = live, 6, 4
    src.source_id, src.description = "camera:7", "camera 7 (/dev/video7)"
    src._cap = _FakeCap(good)
    return src


def test_camera_that_vanishes_mid_run_names_the_source():
    src = _capture(3, live=True)
    for _ in range(3):
        assert src.read() is not None
    with pytest.raises(S.SourceError, match=r"camera 7 .*stopped giving frames after 3"):
        src.read()
    src.close()
    assert src._cap.released
    with pytest.raises(S.SourceError, match="gave no frame"):
        _capture(0, live=True).read()
    f = _capture(1, live=False)                           # a file just ends
    assert f.read() is not None and f.read() is None


def test_missing_camera_is_a_clear_error():
    with pytest.raises(InputError, match="camera 97"):
        S.open_source("/dev/video97")


def test_gstreamer_sources_need_an_opencv_with_gstreamer():
    from trtssd.io import gst
    if S.opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer; the error path cannot be shown here")
    with pytest.raises(EnvironmentProblem, match="GStreamer"):
        S.open_source("csi://0")
    if gst.have_gst():
        pytest.skip("PyGObject is here: gst: pipelines go through its appsink instead")
    with pytest.raises(EnvironmentProblem, match="GStreamer"):
        S.open_source("gst:videotestsrc ! appsink")


def test_pipeline_strings():
    p = S.csi_pipeline(1, 640, 480, 60, flip=2)
    assert p.startswith("nvarguscamerasrc sensor-id=1 ")
    assert "framerate=60/1" in p and "flip-method=2" in p and "width=640" in p
    assert p.rstrip().endswith("appsink drop=true max-buffers=1 sync=false")
    r = S.rtsp_pipeline("rtsp://cam/1", latency_ms=0)
    assert r.startswith("rtspsrc location=rtsp://cam/1 latency=0 ") and "appsink drop=true" in r
    with pytest.raises(InputError, match="csi://N"):
        S.open_source("csi://front")


def test_synthetic_source_is_deterministic():
    a = S.open_source("synthetic:67x45", frames=6)
    b = S.SyntheticSource(67, 45, frames=6)
    c = S.SyntheticSource(67, 45, frames=6, seed=1)
    assert (a.width, a.height, a.live) == (67, 45, False)
    fa, fb, fc = list(a), list(b), list(c)
    assert len(fa) == 6 and [f.index for f in fa] == list(range(6))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(fa, fb))
    assert not np.array_equal(fa[0].image, fc[0].image)
    assert fa[0].image.shape == (45, 67, 3) and fa[0].image.dtype == np.uint8
    assert not np.array_equal(fa[0].image, fa[1].image)
    out = np.full((45, 67, 3), 0xFF, np.uint8)
    f = S.SyntheticSource(67, 45, frames=1).read(out=out)
    assert f.image is out and np.array_equal(out, fa[0].image)


def test_synthetic_source_images_and_live_pacing():
    pics = [np.full((10, 12, 3), v, np.uint8) for v in (10, 20, 30)]
    src = S.SyntheticSource(12, 10, frames=7, images=pics)
    assert [int(f.image[0, 0, 0]) for f in src] == [10, 20, 30, 10, 20, 30, 10]
    live = S.open_source("synthetic:16x8@200", frames=40)
    assert live.live and live.fps == 200
    t0 = time.perf_counter()
    first = live.read()
    time.sleep(0.1)                 # a reader 100 ms late misses ~20 frames of a 200 FPS camera
    later = live.read()
    assert first.index == 0 and later.index > 1 and live.skipped == later.index - 1
    rest = list(live)
    assert rest[-1].index == 39                     # frames bounds the count, skips included
    assert time.perf_counter() - t0 < 5
    with pytest.raises(InputError):
        S.SyntheticSource(0, 10)
    with pytest.raises(InputError, match="WIDTHxHEIGHT"):
        S.open_source("synthetic:big")


def test_open_source_rejects_nonsense():
    with pytest.raises(InputError):
        S.open_source("")
    with pytest.raises(InputError):
        S.open_source(None)
    src = S.SyntheticSource(4, 4, frames=1)
    assert S.open_source(src) is src
    assert os.path.splitext("x.JPG".lower())[1] in S.IMAGE_EXTENSIONS


class _Alloc(object):
    """A counting allocator standing in for the CUDA layer's pinned_empty."""

    def __init__(self):
        self.made, self.freed = [], []

    def allocate(self, shape):
        b = np.full(shape, 0xEE, np.uint8)
        self.made.append(b)
        return b

    def free(self, b):
        self.freed.append(b)


def test_synthetic_frames_are_read_only_views_without_copies():
    src = S.SyntheticSource(40, 30, frames=9)
    fs = list(src)
    assert all(not f.image.flags.writeable for f in fs)
    # no copy per frame: frame i and i+4 (the 4 pictures cycle) share one buffer
    assert np.shares_memory(fs[0].image, fs[4].image)
    assert not np.shares_memory(fs[0].image, fs[1].image)
    with pytest.raises(ValueError):
        fs[0].image[0, 0, 0] = 1                       # read-only: nobody draws on it


def test_synthetic_ring_from_a_lent_allocator_blocks_and_gives_back():
    import threading
    ref = [f.image.copy() for f in S.SyntheticSource(40, 30, frames=12)]
    alloc, stop = _Alloc(), threading.Event()
    src = S.SyntheticSource(40, 30, frames=12)
    assert src.provide_buffers(alloc.allocate, alloc.free, count=5, stop=stop) is True
    assert src.ring_size == 8 and len(alloc.made) == 8     # rounded up to the 4 pictures' multiple
    fs = [src.read() for _ in range(8)]
    for i, f in enumerate(fs):
        assert f.index == i and np.array_equal(f.image, ref[i])
        assert any(np.shares_memory(f.image, b) for b in alloc.made)   # in the lent memory
        assert not f.image.flags.writeable
    # every buffer is out: the next read waits for frame 0's buffer (back-pressure)
    got = []
    t = threading.Thread(target=lambda: got.append(src.read()))
    t.start()
    t.join(0.3)
    assert t.is_alive() and got == []
    fs[0].done()
    t.join(5)
    assert not t.is_alive() and got[0].index == 8 and np.array_equal(got[0].image, ref[8])
    assert np.shares_memory(got[0].image, fs[0].image)
    # a stop wakes a waiting read, which then ends
    t = threading.Thread(target=lambda: got.append(src.read()))
    t.start()
    t.join(0.3)
    stop.set()
    t.join(5)
    assert not t.is_alive() and got[1] is None
    for f in fs[1:] + got[:1]:
        f.done()
        f.done()                                             # idempotent
    src.release_buffers()
    assert len(alloc.freed) == 8 and src.ring_size == 0
    assert src.read().index == 9                             # standalone again, no ring


def test_live_synthetic_ring_drops_frames_whose_buffer_is_out():
    alloc = _Alloc()
    src = S.SyntheticSource(16, 8, frames=40, live=True, fps=200,
                            images=[np.full((8, 16, 3), v, np.uint8) for v in (1, 2)])
    src.provide_buffers(alloc.allocate, alloc.free, count=2)
    a, b = src.read(), src.read()          # both buffers out
    assert (a.index, b.index) == (0, 1)
    import threading
    timer = threading.Timer(0.05, a.done)   # buffer 0 comes back ~10 frames later
    timer.start()
    c = src.read()                          # frames due meanwhile are dropped, like a camera's
    timer.join()
    assert c is not None and c.index > 2 and c.index % 2 == 0     # buffer 0's next frame
    assert src.skipped == c.index - 2
    assert int(c.image[0, 0, 0]) == 1
    for f in (b, c):
        f.done()
    src.release_buffers()
    assert len(alloc.freed) == 2


# ---------------------------------------------------------------------------------------------
# sources that keep YUV (the pixel_format contract), and the PyGObject appsink source
# ---------------------------------------------------------------------------------------------

def test_yuv_buffer_shapes_and_pipeline_formats():
    assert S.yuv_buffer_shape("NV12", 480, 640) == (720, 640)
    assert S.yuv_buffer_shape("I420", 34, 66) == (51, 66)
    assert S.yuv_buffer_shape("YUYV", 480, 640) == (480, 640, 2)
    assert S.yuv_buffer_shape("BGR", 4, 6) == (4, 6, 3)
    with pytest.raises(InputError, match="NV12"):
        S.yuv_buffer_shape("RGB565", 4, 4)
    assert S.pipeline_pixel_format("v4l2src ! video/x-raw, format=NV12 ! appsink") == "NV12"
    assert S.pipeline_pixel_format(
        "videotestsrc ! video/x-raw,format=(string)YUY2 ! videoconvert ! video/x-raw,"
        "format=UYVY ! appsink name=sink") == "UYVY"
    assert S.pipeline_pixel_format("filesrc ! decodebin ! videoconvert ! appsink") == "BGR"
    nv12 = S.csi_pipeline(0, 1280, 720, 30, pixel_format="NV12")
    assert S.pipeline_pixel_format(nv12) == "NV12" and "videoconvert" not in nv12
    assert "nvv4l2decoder" in S.nvdec_file_pipeline("clip.mp4")
    assert S.Source.pixel_format == "BGR" and S.SyntheticSource(4, 4).pixel_format == "BGR"


def test_camera_yuyv_asks_for_raw_frames(monkeypatch):
    """A YUYV camera turns OpenCV's RGB conversion off, asks for the FOURCC, and hands out
    (H, W, 2) frames (OpenCV's V4L2 backend gives the raw buffer; no camera here, so the
    capture is a stand-in recording what was asked of it)."""
    asked = {}

    class Cap(object):
        def __init__(self, *a):
            pass

        def isOpened(self):
            return True

        def set(self, prop, value):
            asked[prop] = value
            return True

        def get(self, prop):
            return {cv2.CAP_PROP_FRAME_WIDTH: 6, cv2.CAP_PROP_FRAME_HEIGHT: 4}.get(prop, 0)

        def read(self, image=None):
            return True, np.arange(48, dtype=np.uint8).reshape(1, 48)   # raw 1 x (H*W*2)

        def release(self):
            pass
    monkeypatch.setattr(cv2, "VideoCapture", Cap)
    src = S.CameraSource(0, pixel_format="YUYV")
    assert src.pixel_format == "YUYV" and asked[cv2.CAP_PROP_CONVERT_RGB] == 0
    assert asked[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"YUYV")
    f = src.read()
    assert f.image.shape == (4, 6, 2) and f.image.reshape(-1)[5] == 5
    with pytest.raises(InputError, match="YUYV"):
        S.CameraSource(0, pixel_format="NV12")


_GST_CHECK = r"""
import json, sys
import numpy as np, cv2
from trtssd.io.gst import GstAppSource
from trtssd.io.sources import open_source
W, H = 66, 34            # luma rows padded to 68 bytes by GStreamer: strides are exercised
def frames(fmt, convert=""):
    p = ("videotestsrc num-buffers=2 pattern=smpte ! video/x-raw,format=%s,width=%d,height=%d"
         " ! %s appsink name=sink" % (fmt, W, H, convert))
    src = GstAppSource(p, live=False)
    out = [f.image for f in src]
    return src, out
res = {}
nv12_src, nv12 = frames("NV12")
_, i420 = frames("I420")
_, bgr_gst = frames("NV12", "videoconvert ! video/x-raw,format=BGR !")
res["nv12"] = [nv12_src.pixel_format, list(nv12[0].shape), len(nv12), nv12_src.width,
               nv12_src.height]
uv = nv12[0][H:].reshape(-1, 2)
q = W * H // 4
res["same_as_i420"] = bool(np.array_equal(nv12[0][:H], i420[0][:H]) and
                           np.array_equal(uv[:, 0], i420[0][H:].reshape(-1)[:q]) and
                           np.array_equal(uv[:, 1], i420[0][H:].reshape(-1)[q:]))
ours = cv2.cvtColor(nv12[0], cv2.COLOR_YUV2BGR_NV12)
res["bgr_mean_err"] = float(np.abs(ours.astype(int) - bgr_gst[0]).mean())
yuy2_src, yuy2 = frames("YUY2")
res["yuyv"] = [yuy2_src.pixel_format, list(yuy2[0].shape)]
res["yuyv_luma_is_nv12_luma"] = bool(np.array_equal(yuy2[0][:, :, 0], nv12[0][:H]))
src = open_source("gst:videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=64,"
                  "height=48 ! appsink name=sink", live=False)
res["open_source"] = [type(src).__name__, src.pixel_format, len(list(src))]
print(json.dumps(res))
"""


def _python_with_gi():
    """(env) under which this Python imports gi: as it is, or with the system's
    dist-packages appended (Debian's python3-gi, built for the same CPython), else None."""
    probe = "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstApp', '1.0')"
    import subprocess
    import sys
    env = dict(os.environ)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for extra in ("", "/usr/lib/python3/dist-packages"):
        e = dict(env, PYTHONPATH=os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", ""),
                                                               extra) if p))
        if subprocess.run([sys.executable, "-c", probe], env=e, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return e
    return None


def test_gst_appsink_source_keeps_nv12_and_yuyv():
    import json
    import subprocess
    import sys
    env = _python_with_gi()
    if env is None:
        pytest.skip("PyGObject with GStreamer is not installed (apt-get install python3-gi "
                    "gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base)")
    r = subprocess.run([sys.executable, "-c", _GST_CHECK], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["nv12"] == ["NV12", [51, 66], 2, 66, 34]
    assert res["same_as_i420"]                 # the packed planes are GStreamer's own I420
    # OpenCV's BT.601 conversion of our packed NV12 against GStreamer's videoconvert: the
    # two differ in chroma upsampling and rounding (a few levels on SMPTE bars' sharp edges)
    assert res["bgr_mean_err"] < 12
    assert res["yuyv"] == ["YUYV", [34, 66, 2]] and res["yuyv_luma_is_nv12_luma"]
    assert res["open_source"] == ["GstAppSource", "NV12", 3]


def test_pictures_expand_and_skip_damage(tmp_path):
    from trtssd.io.pictures import expand_pictures
    a = astronaut()[:40, :50]
    for n in ("b.png", "a.jpg", "c.bmp"):
        cv2.imwrite(str(tmp_path / n), a)
    (tmp_path / "notes.txt").write_text("x")
    folder = expand_pictures(str(tmp_path))
    assert [os.path.basename(p) for p in folder] == ["a.jpg", "b.png", "c.bmp"]
    assert expand_pictures(str(tmp_path / "*.png")) == [str(tmp_path / "b.png")]
    assert expand_pictures("clip.mp4") is None and expand_pictures("rtsp://x/y") is None
    with pytest.raises(InputError, match="matches no picture"):
        expand_pictures(str(tmp_path / "*.gif"))
    data = open(folder[0], "rb").read()
    open(folder[0], "wb").write(data[:len(data) // 2])      # a.jpg cut short
    said = []
    src = S.open_source(str(tmp_path), loop=2, warn=said.append)
    fs = list(src)
    assert [os.path.basename(f.source_id) for f in fs] == ["b.png", "c.bmp"] * 2
    assert [f.index for f in fs] == [0, 1, 2, 3] and src.damaged == 2
    assert "picture 0" in said[0] and "truncated JPEG" in said[0]
