"""``gpu``: the ``sync`` schedule on the GPU device layer (GPU preprocessing from pinned
frames, inference, GPU postprocessing; only the kept boxes come back). See sync.py."""
from .sync import run  # noqa: F401
