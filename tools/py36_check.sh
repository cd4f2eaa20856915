#!/usr/bin/env bash
# The Jetson Nano runs Python 3.6 (JetPack 4.6). vermin checks the syntax and library use of
# what ships; this goes one step further where a Python 3.6 interpreter exists (pyenv here):
# a Python 3.6 venv with numpy 1.19 and the dataclasses backport, as on a Nano, byte-compiles
# every shipped file and imports every trtssd module.
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
    "$VENV36/bin/python" -m pip install -q --disable-pip-version-check "numpy==1.19.5" "dataclasses==0.8"
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
print("py36 check: Python %s, numpy %s, %d modules imported" % (
    sys.version.split()[0], __import__("numpy").__version__, len(mods) + 1 - len(failed)))
if failed or not ok:
    print("\n".join(failed))
    sys.exit(1)
PYEOF
