"""Records every other part shares: errors, the model spec, detections, run statistics."""
