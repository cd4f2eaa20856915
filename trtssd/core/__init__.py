"""Records every other part shares: errors, the model spec, detections, run statistics, and
small building blocks (the protobuf wire format, a null context, the Closeable mixin, a
thread-safe free list)."""
