"""Network outputs to kept boxes: the NumPy reference and the GPU decode + NMS, side by side."""
