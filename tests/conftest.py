"""Shared fixtures: where the real model is, and whether a GPU or nvcc is here; and a watchdog
that ends a test run stuck in one test, with every thread's traceback."""
import faulthandler
import os
import sys
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MODELS = os.path.join(os.path.dirname(REPO), "shared", "models")


def model_file(name="detect.tflite"):
    """Path of a file from ../shared/models, or skip the test saying where it should be."""
    root = os.environ.get("TRTSSD_MODEL_DIR", SHARED_MODELS)
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        pytest.skip("the official model file %s is not here (set TRTSSD_MODEL_DIR to the folder "
                    "holding detect.tflite and coco_labels.txt)" % path)
    return path


@pytest.fixture(scope="session")
def tflite_model():
    return model_file("detect.tflite")


@pytest.fixture(scope="session")
def label_file():
    return model_file("coco_labels.txt")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh $TRTSSD_CACHE folder for the module (the converted ONNX files land there)."""
    old = os.environ.get("TRTSSD_CACHE")
    d = str(tmp_path_factory.mktemp("cache"))
    os.environ["TRTSSD_CACHE"] = d
    yield d
    if old is None:
        del os.environ["TRTSSD_CACHE"]
    else:
        os.environ["TRTSSD_CACHE"] = old


# No test of this suite takes more than a few minutes, even on a loaded CI machine; one that
# does is stuck (a cluster waiting for resources, a thread waiting for a frame), and without
# this the run would sit there until CI's own limit, printing nothing about where.
WATCHDOG_S = float(os.environ.get("TRTSSD_TEST_WATCHDOG_S", "900"))


def _stuck(item):
    """The watchdog's end: the real stderr back from pytest's capture, every thread's
    traceback on it, and the run ended (os._exit: a stuck thread cannot hold it up)."""
    capman = item.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=False)
    sys.stderr.write("\n\ntrtssd test watchdog: %s still running after %.0f s "
                     "(TRTSSD_TEST_WATCHDOG_S); every thread:\n" % (item.nodeid, WATCHDOG_S))
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timer = None
    if WATCHDOG_S > 0:
        timer = threading.Timer(WATCHDOG_S, _stuck, (item,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


_GPU_REASON = []


def gpu_unavailable_reason():
    """None when pycuda and a CUDA device are usable here, else why not (the package's probe,
    trtssd.core.env, asked once per session)."""
    if not _GPU_REASON:
        from trtssd.core.env import gpu_unavailable_reason as probe
        reason = probe()
        if reason and reason.startswith("pycuda is not installed"):
            reason += " (GPU tests run on the lent GPU machine)"
        _GPU_REASON.append(reason)
    return _GPU_REASON[0]


@pytest.fixture(scope="session")
def nvcc():
    """Path of nvcc by the package's lookup (trtssd.core.env.which_nvcc); skips without one."""
    from trtssd.core.env import which_nvcc
    path = which_nvcc()
    if not path:
        pytest.skip("nvcc is not installed here (export PATH=/usr/local/cuda/bin:$PATH on Jetson)")
    return path


@pytest.fixture(scope="session")
def cuda_context():
    """The device's primary context, current in the test's thread; skips without a GPU."""
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(reason)
    from trtssd.gpu.cuda import CudaContext
    ctx = CudaContext(0)
    with ctx.active():
        yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def torch_cuda(cuda_context):
    """PyTorch with CUDA (sharing trtssd's primary context); skips without it."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    return torch


@pytest.fixture(scope="module")
def torch_backends(torch_cuda, tflite_model):
    """``get(max_batch)``: the real model on PyTorch's CUDA backend, one per batch size, made
    once per test module and closed after it; skips without a GPU or PyTorch's CUDA."""
    from trtssd.backends import create_backend
    made = {}

    def get(max_batch):
        if max_batch not in made:
            made[max_batch] = create_backend("torch", model=tflite_model, device="cuda",
                                             max_batch=max_batch)
        return made[max_batch]
    yield get
    for b in made.values():
        b.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and pycuda")
