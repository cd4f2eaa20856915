"""RTSP for real: a GStreamer RTSP server on 127.0.0.1 (tests/io/rtsp_server.py) is cut
mid-run and restored; the source reconnects with back-off, the outage is counted, the outputs
stay whole, and Ctrl-C still ends the command at once, even during the outage. Bounded in
time; skipped with the reason where no RTSP server can run here."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

cv2 = pytest.importorskip("cv2")

from support.clips import bgr_frames  # noqa: E402
from support.net import free_port  # noqa: E402
from trtssd.io import sources as S  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(HERE, "rtsp_server.py")
PROBE = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import GstRtspServer")


def _server_python():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.path.exists(py) and subprocess.run(
                [py, "-c", PROBE], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


@pytest.fixture(scope="module")
def server_python():
    py = _server_python()
    if py is None:
        pytest.skip("no RTSP server here: GStreamer's gst-rtsp-server with PyGObject is "
                    "missing (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                    "gstreamer1.0-plugins-good; Debian 12 has no live555MediaServer package)")
    if "CAP_FFMPEG" not in dir(cv2) or "FFMPEG:" not in cv2.getBuildInformation():
        pytest.skip("this OpenCV has no FFmpeg to read RTSP with")
    return py


class Server(object):
    """The RTSP server process: start, cut (kill), restore (start again on the same port)."""

    def __init__(self, python, port, seconds=90):
        self.python, self.port, self.seconds = python, port, seconds
        self.proc = None
        self.url = "rtsp://127.0.0.1:%d/clip" % port

    def start(self):
        self.proc = subprocess.Popen([self.python, SERVER, str(self.port), str(self.seconds)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     universal_newlines=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", "the RTSP server did not start"

    def cut(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    stop = cut


@pytest.fixture
def server(server_python):
    s = Server(server_python, free_port())
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_source_reconnects_and_counts_the_gap(server):
    warnings = []
    src = S.open_source(server.url, timeout_ms=2000, warn=warnings.append)
    try:
        assert src.live and src.reconnect
        first = [src.read() for _ in range(10)]
        assert all(f is not None and f.image.shape == (120, 160, 3) for f in first)
        server.cut()
        threading.Timer(2.0, server.start).start()     # restored 2 s later
        t0 = time.time()
        got, after = [], 0
        while after < 10 and time.time() - t0 < 40:   # frames buffered before the cut, the
            f = src.read()                             # outage, then 10 frames after it
            assert f is not None
            got.append(f)
            after += src.gaps == 1
        assert after == 10                              # frames again after the outage
        assert [f.index for f in first + got] == list(range(10 + len(got)))
        assert src.gaps == 1 and 1.5 < src.gap_s < 40
        assert any("reconnecting" in w for w in warnings)
        assert any("gives frames again" in w for w in warnings)
    finally:
        src.close()


def test_without_reconnect_a_cut_is_an_error(server):
    src = S.open_source(server.url, timeout_ms=2000, reconnect=False)
    try:
        assert src.read() is not None
        server.cut()
        with pytest.raises(S.SourceError, match="stopped giving frames"):
            t0 = time.time()
            while time.time() - t0 < 30:
                src.read()
    finally:
        src.close()


def _lines(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return f.read().count("\n")


def _wait(cond, timeout, proc):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError("the command ended: %s" % (proc.communicate()[1],))
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.parametrize("mode", ["sync", "pipelined"])
def test_command_rides_out_a_cut_and_stops_at_once(mode, server, tmp_path, tflite_model):
    out, movie = str(tmp_path / "d.jsonl"), str(tmp_path / "a.mp4")
    partial = str(tmp_path / ".d.partial.jsonl")
    p = subprocess.Popen([sys.executable, "-m", "trtssd", "detect", server.url, "-o", out,
                          "-o", movie, "--mode", mode, "--model", tflite_model, "--backend",
                          "onnxruntime", "--device", "cpu"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    log = []
    reader = threading.Thread(target=lambda: log.extend(iter(p.stderr.readline, "")))
    reader.daemon = True
    reader.start()

    def said(text, n=1):
        return sum(text in line for line in list(log)) >= n
    try:
        _wait(lambda: _lines(partial) >= 10, 60, p)
        server.cut()
        _wait(lambda: said("reconnecting"), 30, p)     # the outage is seen (after what
        time.sleep(1.0)                                # FFmpeg had buffered), lasts a while
        server.start()
        _wait(lambda: said("gives frames again"), 40, p)
        before = _lines(partial)
        _wait(lambda: _lines(partial) >= before + 10, 60, p)
        server.cut()                                    # Ctrl-C during a second outage
        _wait(lambda: said("reconnecting", 2), 30, p)
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
        took = time.time() - t0
        reader.join(10)
        err = "".join(log)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert took < 15, "Ctrl-C took %.1f s" % took      # bounded, not a speed measurement
    assert "2 outages" in err
    with open(out) as f:
        text = f.read()
    recs = [json.loads(line) for line in text.splitlines()]
    assert text.endswith("\n") and len(recs) >= 20
    assert [r["frame"] for r in recs] == sorted(r["frame"] for r in recs)
    assert len(bgr_frames(cv2, movie)) == len(recs)
