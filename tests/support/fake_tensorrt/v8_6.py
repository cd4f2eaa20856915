"""Fake tensorrt 8.6 (JetPack 6 on Orin ships 8.6): as 8.5, plus the parser's node_operator().

Follows NVIDIA's TensorRT 8.6 Python API documentation:
https://docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-861/api/python_api/
(infer/Core/Engine.html, ExecutionContext.html as in 8.5; parsers/Onnx/pyOnnx.html:
``IParserError.node_operator()``). The bindings API is still present and deprecated.
"""
from ._base import make_module

VERSION = "8.6.1.6"
FEATURES = ("bindings", "tensors", "max_workspace_size", "memory_pool", "parser_node_operator",
            "version_compatible")
DOCS = __doc__.splitlines()


def make():
    return make_module(VERSION, FEATURES, DOCS)
