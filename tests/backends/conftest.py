"""Fixtures of the TensorRT build and run tests: one fake per API generation, a tiny ONNX model."""
import pytest

from support.fake_tensorrt import GENERATIONS, make
from support.fake_tensorrt.models import write_onnx


@pytest.fixture(params=GENERATIONS)
def trt(request):
    return make(request.param)


@pytest.fixture
def onnx_path(tmp_path):
    return write_onnx(str(tmp_path / "tiny.onnx"))
