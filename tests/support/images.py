"""Real test pictures with known content, resized to the network input.

- scikit-image's ``skimage.data``: astronaut, chelsea (a cat), coffee;
- Debian's ``darknet`` package ships dog, person, horses, kite, giraffe, eagle: fetched once with
  ``apt-get download darknet`` + ``dpkg -x`` into ``$TRTSSD_TEST_IMAGES`` (default
  ``~/.cache/trtssd/test-images``); where that cannot be done they are skipped with the reason.
"""
import glob
import os
import shutil
import subprocess
import tempfile

import numpy as np

SKIMAGE_NAMES = ("astronaut", "chelsea", "coffee")
DARKNET_NAMES = ("dog", "person", "horses", "kite", "giraffe", "eagle")


def cache_dir():
    return os.environ.get("TRTSSD_TEST_IMAGES") or os.path.join(
        os.path.expanduser("~"), ".cache", "trtssd", "test-images")


def to_network_input(rgb, size=300):
    """RGB uint8 picture -> [size, size, 3] RGB uint8 with cv2.resize INTER_LINEAR."""
    import cv2
    return np.ascontiguousarray(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR))


def skimage_pictures():
    """{name: RGB uint8 picture}; raises ImportError without scikit-image."""
    from skimage import data
    return {name: np.ascontiguousarray(getattr(data, name)()[..., :3]) for name in SKIMAGE_NAMES}


def _fetch_darknet(dest):
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "apt-get/dpkg are not on this machine"
    work = tempfile.mkdtemp(prefix="trtssd-darknet-")
    try:
        p = subprocess.Popen(["apt-get", "download", "darknet"], cwd=work,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out = p.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return "apt-get download darknet timed out"
        debs = glob.glob(os.path.join(work, "darknet_*.deb"))
        if p.returncode != 0 or not debs:
            return "apt-get download darknet failed: %s" % out.decode("utf-8", "replace")[-300:]
        x = os.path.join(work, "x")
        if subprocess.call(["dpkg", "-x", debs[0], x]) != 0:
            return "dpkg -x %s failed" % debs[0]
        jpgs = glob.glob(os.path.join(x, "usr", "share", "darknet", "data", "*.jpg"))
        if not jpgs:
            return "the darknet package holds no data/*.jpg"
        if not os.path.isdir(dest):
            os.makedirs(dest)
        for j in jpgs:
            shutil.copy(j, dest)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def darknet_pictures():
    """({name: RGB uint8 picture}, reason) -- empty dict and the reason where unavailable."""
    import cv2
    dest = os.path.join(cache_dir(), "darknet")
    have = [n for n in DARKNET_NAMES if os.path.isfile(os.path.join(dest, n + ".jpg"))]
    if not have:
        why = _fetch_darknet(dest)
        if why:
            return {}, why
    out = {}
    for n in DARKNET_NAMES:
        path = os.path.join(dest, n + ".jpg")
        if os.path.isfile(path):
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is not None:
                out[n] = np.ascontiguousarray(bgr[..., ::-1])
    return out, (None if out else "no darknet picture could be read from %s" % dest)
