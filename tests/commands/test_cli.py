"""The `trtssd` command: subcommands, one-line errors with the right exit codes, `info`."""
import json
import os
import subprocess
import sys

import pytest

from trtssd.commands import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("detect", "info", "bench", "build-engine"):
        assert name in out
    with pytest.raises(SystemExit):
        cli.main(["detect", "--help"])
    out = capsys.readouterr().out
    for opt in ("--model", "--backend", "--device", "--mode", "--depth", "--threshold",
                "--output", "--display", "--max-frames"):
        assert opt in out


def test_no_command_prints_help_and_exits_2(capsys):
    rc, out, err = run_main([], capsys)
    assert rc == 2 and "detect" in err


def one_line_error(err):
    lines = err.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in err and lines[0].startswith("trtssd:")


def test_missing_source_is_one_line_exit_1(capsys, tflite_model):
    rc, out, err = run_main(["detect", "/nonexistent/clip.mp4", "--model", tflite_model,
                             "--device", "cpu"], capsys)
    assert rc == 1 and one_line_error(err) and "/nonexistent/clip.mp4" in err


def test_missing_model_is_one_line_exit_1(capsys):
    rc, out, err = run_main(["detect", "synthetic:32x32", "--model", "/nonexistent/m.tflite",
                             "--device", "cpu"], capsys)
    assert rc == 1 and one_line_error(err) and "/nonexistent/m.tflite" in err


def test_bad_options_are_one_line_exit_1(capsys, tflite_model):
    for extra in (["--depth", "0", "--mode", "pipelined"], ["--threshold", "3"],
                  ["--mode", "sync"]):
        two = ["synthetic:8x8"] if extra == ["--mode", "sync"] else []   # 2 sources, not multi
        rc, out, err = run_main(["detect", "synthetic:32x32"] + two + ["--model", tflite_model,
                                 "--device", "cpu", "--max-frames", "1"] + extra, capsys)
        assert rc == 1 and one_line_error(err), (extra, err)


def test_gpu_mode_on_cpu_device_exits_2(capsys):
    rc, out, err = run_main(["detect", "synthetic:32x32", "--device", "cpu", "--mode", "gpu"],
                            capsys)
    assert rc == 2 and one_line_error(err) and "--mode gpu" in err


def test_gpu_needs_said_plainly_without_a_gpu(capsys):
    from conftest import gpu_unavailable_reason
    if gpu_unavailable_reason() is None:
        pytest.skip("a GPU is here: the no-GPU message cannot be shown")
    for argv in (["--mode", "gpu"], ["--device", "cuda"], ["--backend", "tensorrt"]):
        rc, out, err = run_main(["detect", "synthetic:32x32"] + argv, capsys)
        assert rc == 2 and one_line_error(err) and "needs a CUDA GPU" in err, (argv, err)


def test_detect_synthetic_writes_stats(capsys, tmp_path, tflite_model):
    stats = str(tmp_path / "stats.json")
    rc, out, err = run_main(["detect", "synthetic:64x48", "--model", tflite_model, "--device",
                             "cpu", "--max-frames", "3", "--stats", stats], capsys)
    assert rc == 0, err
    s = json.load(open(stats))
    assert s["frames"] == 3 and s["mode"] == "sync" and s["dropped"] == 0
    assert "3 frames" in err


def test_info_reports_modes_and_backends(capsys):
    rc, out, err = run_main(["info", "--json"], capsys)
    assert rc == 0
    info = json.loads(out)
    assert set(info["modes"]) == {"sync", "async", "gpu", "pipelined", "multi"}
    for mode, (ok, why) in info["modes"].items():
        assert isinstance(ok, bool) and why                  # every mode says how or why not
    assert "onnxruntime-cpu" in info["backends"]
    if not info["gpu_ok"]:
        assert info["gpu_reason"] and info["modes"]["gpu"][0] is False
    rc, out, err = run_main(["info"], capsys)
    assert rc == 0 and "Modes:" in out and "Backends:" in out and "GPU:" in out


def test_python_m_trtssd_runs():
    p = subprocess.Popen([sys.executable, "-m", "trtssd", "--version"], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.startswith("trtssd "), err


def test_importing_the_cli_does_no_work():
    code = ("import sys, trtssd.commands.cli, trtssd.commands.info, trtssd.io.sources, trtssd.io.sinks, "
            "trtssd.pipeline, trtssd.pipeline.stages; "
            "bad = [m for m in ('cv2', 'pycuda', 'torch', 'onnxruntime', 'tensorrt') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=REPO,
                                  universal_newlines=True)
    assert out.strip() == "[]"
