"""TensorRT 8.2 to 11.x and its lean runtime: version compatibility, engine building (with
the FP16 ONNX step of TensorRT 11) and the runtime, together."""
