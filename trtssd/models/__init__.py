"""Model files: finding them, reading TFLite, converting to ONNX with the spec embedded."""
