"""What the TensorRT build and run tests share: one fake per API generation, a tiny ONNX model
and the GPU the fakes report. Test modules import these names; pytest uses them as fixtures."""
import pytest

from . import GENERATIONS, make
from .models import write_onnx

GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}


@pytest.fixture(params=GENERATIONS)
def trt(request):
    return make(request.param)


@pytest.fixture
def onnx_path(tmp_path):
    return write_onnx(str(tmp_path / "tiny.onnx"))
