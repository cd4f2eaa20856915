"""Network outputs to detections: the NumPy reference (cpu.py) and the GPU kernels (gpu.py,
postprocess.cu), side by side. Importing this package loads neither pycuda nor anything else
heavy; the names below are the public ones."""
from .cpu import (activate, corner_boxes, decode_boxes, frame_boxes, greedy_nms,  # noqa: F401
                  iou_one_to_many, nms_fast, postprocess_cpu, select_frame, to_frame)
from .gpu import (GpuPostprocessor, MAX_CANDIDATES_GPU, MAX_DETECTIONS_GPU,  # noqa: F401
                  kernel_defines, kernel_steps)
