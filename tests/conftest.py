"""Shared fixtures: where the real model is, and whether a GPU or nvcc is here."""
import os
import shutil

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


_GPU_REASON = None


def gpu_unavailable_reason():
    """None when pycuda and a CUDA device are usable here, else why not."""
    global _GPU_REASON
    if _GPU_REASON is None:
        try:
            import pycuda.driver as drv
            drv.init()
            if drv.Device.count() < 1:
                _GPU_REASON = "no CUDA device on this machine"
            else:
                _GPU_REASON = ""
        except ImportError:
            _GPU_REASON = "pycuda is not installed (GPU tests run on the lent GPU machine)"
        except Exception as e:  # driver present but no device, etc.
            _GPU_REASON = "no usable CUDA device: %s" % e
    return _GPU_REASON or None


def nvcc_path():
    return shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


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


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and pycuda")
