"""CUDA C sources of trtssd. Installed as ``trtssd.kernels``; loaded by ``trtssd.kernel_loader``."""
