#!/usr/bin/env bash
# The Jetson Nano runs Python 3.6 (JetPack 4.6, with OpenCV 4.1.1 and numpy 1.19). vermin
# checks the syntax and library use of what ships; this goes further where a Python 3.6
# interpreter exists (pyenv here): a Python 3.6 venv with numpy 1.19, OpenCV 4.1.2 (the
# nearest cp36 wheel to JetPack's 4.1.1), ONNX Runtime 1.10 (the last for cp36) and the
# dataclasses backport byte-compiles every shipped file, imports every trtssd module, and
# runs a small CPU detect (`trtssd detect PICTURE`) with the real model where it is here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY36=${PY36:-$(ls -d "$HOME"/.pyenv/versions/3.6*/bin/python3.6 2>/dev/null | head -n1 || true)}
[ -n "$PY36" ] || PY36=$(command -v python3.6 || true)
if [ -z "$PY36" ] || ! "$PY36" -c "import sys" 2>/dev/null; then
    echo "py36 check: SKIPPED (no python3.6 on this machine; vermin's static check still ran)"
    exit 0
fi
VENV36=${VENV36:-.venv36}
if [ ! -x "$VENV36/bin/python" ]; then
    "$PY36" -m venv "$VENV36"
fi
if ! "$VENV36/bin/python" -c "import numpy, cv2, onnxruntime, dataclasses
assert numpy.__version__.startswith('1.19') and cv2.__version__.startswith('4.1.')" 2>/dev/null; then
    # pip 21.3 (the last for 3.6) knows the manylinux2014 tags ONNX Runtime's wheels use
    "$VENV36/bin/python" -m pip install -q --disable-pip-version-check "pip==21.3.1"
    "$VENV36/bin/python" -m pip install -q --disable-pip-version-check "numpy==1.19.5" \
        "dataclasses==0.8" "opencv-python-headless==4.1.2.30" "onnxruntime==1.10.0"
fi
"$VENV36/bin/python" - <<'PYEOF'
import compileall, importlib, pkgutil, sys
ok = all(compileall.compile_dir(d, quiet=1) for d in ("trtssd", "benchmarks", "tools"))
import trtssd
mods = [m.name for m in pkgutil.walk_packages(trtssd.__path__, "trtssd.")]
mods = [m for m in mods if m != "trtssd.__main__"]
failed = []
for name in ["trtssd"] + mods:
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append("%s: %s: %s" % (name, type(e).__name__, e))
print("py36 check: Python %s, numpy %s, OpenCV %s, %d modules imported" % (
    sys.version.split()[0], __import__("numpy").__version__, __import__("cv2").__version__,
    len(mods) + 1 - len(failed)))
if failed or not ok:
    print("\n".join(failed))
    sys.exit(1)
PYEOF

# A small CPU detect under Python 3.6 with the real model: the ONNX conversion needs packages
# with no cp36 wheels (onnx, tflite), so the main venv converts (into the cache) and Python 3.6
# runs the converted model with ONNX Runtime 1.10 and OpenCV 4.1 on a real picture.
PY=${PY:-.venv/bin/python}
MODEL=${TRTSSD_MODEL:-${TRTSSD_MODEL_DIR:-../shared/models}/detect.tflite}
if [ ! -x "$PY" ] || [ ! -f "$MODEL" ]; then
    echo "py36 detect: SKIPPED (needs $PY and the model at $MODEL)"
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ONNX=$("$PY" -c "import sys; from trtssd.models.resolve import onnx_for; print(onnx_for(sys.argv[1]))" "$MODEL")
LABELS=$(dirname "$MODEL")/coco_labels.txt
"$PY" -c "import sys, cv2; from skimage import data; cv2.imwrite(sys.argv[1], data.astronaut()[:, :, ::-1])" "$WORK/astronaut.png"
"$VENV36/bin/python" -m trtssd detect "$WORK/astronaut.png" --model "$ONNX" --labels "$LABELS" \
    --backend onnxruntime --device cpu -q -o "$WORK/d.jsonl"
"$VENV36/bin/python" - "$WORK/d.jsonl" <<'PYEOF'
import json, sys
recs = [json.loads(line) for line in open(sys.argv[1])]
labels = [d["label"] for d in recs[0]["detections"] if d["score"] > 0.5]
assert len(recs) == 1 and "person" in labels, recs
print("py36 detect: the astronaut is a person under Python 3.6 (%s)" % ", ".join(labels))
PYEOF
