"""The H.264 clips the video tests decode, made with PyAV (whose wheels carry libx264).

Where PyAV is missing (the lent GPU machine has none), a clip made beforehand is taken from
``$TRTSSD_TEST_CLIPS/<name>.mp4``: ``python -m tests.support.clips DIR`` writes every clip the
tests use into DIR, with FFmpeg's NV12 decode of each beside it (``<name>.nv12.npy``, the
reference of the NVDEC tests), to be carried there. Without either, the test skips with the reason.
"""
import os
import sys

import numpy as np
import pytest


def _pictures(av, path):
    """The skimage pictures at 480x360, 5 frames/s, nearly lossless (crf 12, no B-frames)."""
    import cv2
    from skimage import data
    with av.open(path, "w") as out:
        st = out.add_stream("libx264", rate=5)
        st.width, st.height, st.pix_fmt = 480, 360, "yuv420p"
        st.options = {"crf": "12", "bf": "0"}
        for name in ["astronaut", "chelsea", "coffee"] * 3:
            im = np.ascontiguousarray(getattr(data, name)()[:, :, ::-1])
            im = cv2.resize(im, (480, 360), interpolation=cv2.INTER_AREA)
            for p in st.encode(av.VideoFrame.from_ndarray(im, format="bgr24")):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


def _bench_clip(size, frames, fps=None):
    def make(av, path):
        from trtssd.commands.bench_video import make_clip
        kw = {} if fps is None else {"fps": fps}
        return make_clip(path, size=size, frames=frames, **kw)
    return make


CLIPS = {
    "pictures-480x360": _pictures,
    "small-96x64": _bench_clip((96, 64), 12),
    "bench-160x96": _bench_clip((160, 96), 24, fps=24),
}


def nv12_frames(av, path):
    """FFmpeg's decode of ``path`` as NV12 arrays ((H*3/2, W) uint8), through PyAV."""
    with av.open(path) as c:
        return [f.to_ndarray(format="nv12") for f in c.decode(video=0)]


def bgr_frames(cv2, path):
    """OpenCV's decode of the video at ``path``: every frame it reads, BGR, in order."""
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, im = cap.read()
            if not ok:
                return frames
            frames.append(im)
    finally:
        cap.release()


def clip(name, folder):
    """Path of clip ``name``: made in ``folder`` with PyAV, else the carried one, else skip."""
    try:
        import av
    except ImportError:
        carried = os.path.join(os.environ.get("TRTSSD_TEST_CLIPS", ""), name + ".mp4")
        if os.environ.get("TRTSSD_TEST_CLIPS") and os.path.isfile(carried):
            return carried
        pytest.skip("PyAV (`pip install av`) is needed to make the H.264 test clip, and no "
                    "clip was carried in $TRTSSD_TEST_CLIPS (python -m tests.support.clips DIR)")
    return CLIPS[name](av, os.path.join(str(folder), name + ".mp4"))


if __name__ == "__main__":
    import av
    dest = sys.argv[1]
    os.makedirs(dest, exist_ok=True)
    for n, make in sorted(CLIPS.items()):
        path = make(av, os.path.join(dest, n + ".mp4"))
        np.save(path[:-len(".mp4")] + ".nv12.npy", np.stack(nv12_frames(av, path)))
        print(path)
