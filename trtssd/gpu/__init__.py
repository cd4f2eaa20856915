"""CUDA plumbing: the context, device and pinned buffers, streams, events, kernel compilation."""
