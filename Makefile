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

# Every tool runs through the venv's interpreter ($(PY) -m pytest; vermin, which has no
# __main__, through its entry point): ensure_deps leaves a module
# alone when the base Python already has it, and the venv sees the base Python's packages, so
# a tool installed either way is found (a bare $(VENV)/bin/TOOL exists only when the venv's
# own pip installed it).
test: vermin
	$(PY) tools/ensure_deps.py test
	PY=$(PY) tools/py36_check.sh
	$(PY) -m pytest -q -rs tests

vermin: $(PY)
	$(PY) tools/ensure_deps.py vermin
	$(PY) -c "import sys, vermin; sys.exit(vermin.main())" \
	    -t=3.6- --violations --no-tips --backport dataclasses \
	    --eval-annotations --feature union-types $(VERMIN_TARGETS)

bench: $(PY)
	$(PY) tools/ensure_deps.py bench
	$(PY) -m trtssd bench --video auto $(BENCH_ARGS)

engines: $(PY)
	$(PY) tools/ensure_deps.py bench
	$(PY) -m trtssd build-engine $(ENGINE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
