"""The `trtssd` command: detect, info, bench (with its report) and build-engine."""
