"""TensorRT: version compatibility, engine building and the runtime, together."""
