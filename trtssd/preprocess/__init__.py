"""Frames to network input: the CPU reference and the fused GPU kernel, side by side."""
