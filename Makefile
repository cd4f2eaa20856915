# The two commands of the README: `make bench` (the main job) and `make test`.
# Both create .venv (with the system's site-packages visible, so JetPack's OpenCV, numpy and
# TensorRT are used where they exist) and install only what is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_ARGS ?=
ENGINE_ARGS ?= $(or $(TRTSSD_MODEL),../shared/models/detect.tflite)
VERMIN_TARGETS := trtssd benchmarks tools

.PHONY: test bench engines vermin venv clean

$(PY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

venv: $(PY)

test: $(PY)
	$(PY) tools/ensure_deps.py test
	$(VENV)/bin/vermin -t=3.6- --violations --no-tips --backport dataclasses \
	    --eval-annotations --feature union-types $(VERMIN_TARGETS)
	tools/py36_check.sh
	$(PY) -m pytest -q -rs tests

bench: $(PY)
	$(PY) tools/ensure_deps.py bench
	$(PY) -m trtssd bench --video auto $(BENCH_ARGS)

engines: $(PY)
	$(PY) tools/ensure_deps.py bench
	$(PY) -m trtssd build-engine $(ENGINE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
