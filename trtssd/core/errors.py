"""Exceptions. Every message says what is wrong and what to do about it."""


class TrtssdError(Exception):
    """Base class of every error trtssd raises on purpose."""


class InputError(TrtssdError, ValueError):
    """A frame, array, option or argument the caller passed cannot be used."""


class ModelError(TrtssdError):
    """A model or label file is missing, truncated, foreign or unsupported."""


class EngineError(TrtssdError):
    """A TensorRT engine cannot be built, loaded or run as it is."""


class EnvironmentProblem(TrtssdError, RuntimeError):
    """Something this machine lacks: nvcc, pycuda, a GPU, a backend library."""
