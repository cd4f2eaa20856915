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


# ---------------------------------------------------------------------------------------------
# the habits users bring (detectnet, yolo predict)
# ---------------------------------------------------------------------------------------------

cv2 = pytest.importorskip("cv2")


def _pictures(folder, names=("astronaut", "chelsea", "coffee"), exts=(".png", ".jpg", ".jpg")):
    from skimage import data
    os.makedirs(str(folder), exist_ok=True)
    paths = []
    for name, ext in zip(names, exts):
        p = os.path.join(str(folder), name + ext)
        cv2.imwrite(p, getattr(data, name)()[:, :, ::-1])
        paths.append(p)
    return paths


def _video(path, n=12, size=(96, 64), fps=10):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.RandomState(0)
    for _ in range(n):
        w.write(np.repeat(np.repeat(rng.randint(0, 256, (size[1] // 8, size[0] // 8, 3))
                                    .astype(np.uint8), 8, 0), 8, 1))
    w.release()
    return str(path)


np = pytest.importorskip("numpy")


def cpu(model):
    return ["--model", model, "--backend", "onnxruntime", "--device", "cpu"]


def jsonl(path):
    with open(str(path)) as f:
        return [json.loads(line) for line in f]


def test_folder_glob_and_files_are_one_stream_of_pictures(tmp_path, tflite_model, capsys):
    pics = _pictures(tmp_path / "a")
    more = _pictures(tmp_path / "b", names=("rocket", "coffee"), exts=(".jpg", ".png"))
    out = tmp_path / "d.jsonl"
    stats = tmp_path / "s.json"
    rc, _, err = run_main(["detect", str(tmp_path / "a"), str(tmp_path / "b" / "*.jpg"),
                           more[1], "-o", str(out), "--stats", str(stats)] + cpu(tflite_model),
                          capsys)
    assert rc == 0, err
    recs = jsonl(out)
    # one stream: the folder's pictures sorted, then the glob's, then the file; frames 0..n-1
    assert [r["source"] for r in recs] == sorted(pics) + [more[0], more[1]]
    assert [r["frame"] for r in recs] == list(range(5))
    s = json.load(open(str(stats)))
    assert s["mode"] == "sync" and s["frames"] == 5     # not multi with five "cameras"
    assert s["frames_decoded"] == 5 and s["frames_written"] == 5
    labels = {os.path.basename(r["source"]): {d["label"] for d in r["detections"]
                                              if d["score"] > 0.5} for r in recs}
    assert "cat" in labels["chelsea.jpg"] and "cup" in labels["coffee.jpg"]


def test_many_pictures_are_read_one_at_a_time(tmp_path):
    import tracemalloc
    from trtssd.io.pictures import PictureSource
    p = str(tmp_path / "p.png")
    cv2.imwrite(p, np.full((480, 640, 3), 100, np.uint8))
    src = PictureSource([p] * 400)            # 400 x 0.9 MB if all were held
    tracemalloc.start()
    try:
        n = 0
        peak_after = []
        for f in src:
            n += 1
            del f
            if n in (20, 400):
                peak_after.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert n == 400
    # the peak after 400 pictures is the peak after 20: one picture at a time (0.9 MB each)
    assert peak_after[1] - peak_after[0] < 2 * 640 * 480 * 3


def test_dash_writes_json_lines_to_stdout(tmp_path, tflite_model, capsys, monkeypatch):
    pics = _pictures(tmp_path / "p", names=("chelsea",), exts=(".jpg",))
    monkeypatch.chdir(str(tmp_path))
    rc, out, err = run_main(["detect", pics[0], "-o", "-"] + cpu(tflite_model), capsys)
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 1 and recs[0]["source"] == pics[0]
    assert "cat" in {d["label"] for d in recs[0]["detections"]}
    assert not os.path.exists(str(tmp_path / "-"))          # no folder named '-'


def test_url_outputs_need_a_known_scheme(tmp_path, tflite_model, capsys, monkeypatch):
    from trtssd.io import sinks as K
    pics = _pictures(tmp_path / "p", names=("chelsea",), exts=(".jpg",))
    monkeypatch.chdir(str(tmp_path))
    rc, out, err = run_main(["detect", pics[0], "-o", "mqtt://host:1883/topic"]
                            + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "mqtt://" in err and "known: file://" in err
    assert not os.path.exists(str(tmp_path / "mqtt:"))       # no folder tree
    got = []

    class Fake(K.Sink):
        def __init__(self, url, **kw):
            self.url = url

        def write(self, frame, dets):
            got.append((self.url, frame.source_id, len(dets)))
    monkeypatch.setitem(K.SINK_SCHEMES, "mqtt", Fake)       # what a registered scheme gets
    rc, out, err = run_main(["detect", pics[0], "-o", "mqtt://host:1883/topic", "-q"]
                            + cpu(tflite_model), capsys)
    assert rc == 0, err
    assert got and got[0][:2] == ("mqtt://host:1883/topic", pics[0])


def test_one_console_line_per_picture_and_quiet(tmp_path, tflite_model, capsys):
    pics = _pictures(tmp_path / "p")
    rc, out, err = run_main(["detect", str(tmp_path / "p")] + cpu(tflite_model), capsys)
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("picture ")]
    assert len(lines) == 3
    assert lines[1].startswith("picture 2/3 %s: " % sorted(pics)[1]) and "cat" in lines[1]
    rc, out, err = run_main(["detect", str(tmp_path / "p"), "-q"] + cpu(tflite_model), capsys)
    assert rc == 0 and err == "" and out == ""


def test_progress_bar_on_a_terminal_only(tmp_path, tflite_model):
    import pty
    import select
    video = _video(tmp_path / "v.avi", n=30)
    cmd = [sys.executable, "-m", "trtssd", "detect", video] + cpu(tflite_model)
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, cwd=REPO, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert p.returncode == 0, text
    assert "30/30" in text and "frame/s" in text          # tqdm: count, rate, (ETA)
    # not a terminal: no bar
    q = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert q.returncode == 0 and "frame/s" not in q.stderr and "30 written" in q.stderr


def test_classes_keep_only_the_named_labels(tmp_path, tflite_model, capsys):
    _pictures(tmp_path / "p")
    out = tmp_path / "d.jsonl"
    rc, _, err = run_main(["detect", str(tmp_path / "p"), "--classes", "cat,Cup", "-o",
                           str(out), "-q"] + cpu(tflite_model), capsys)
    assert rc == 0, err
    labels = [d["label"] for r in jsonl(out) for d in r["detections"]]
    assert set(labels) == {"cat", "cup"}
    rc, _, err = run_main(["detect", str(tmp_path / "p"), "--classes", "unicorn", "-q"]
                          + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "--classes unicorn" in err


def test_overlay_and_picture_names(tmp_path, tflite_model, capsys):
    pics = _pictures(tmp_path / "p")
    outs = {}
    for overlay in ("none", "box", "box,labels,conf"):
        folder = tmp_path / ("o-" + overlay.replace(",", "_"))
        rc, _, err = run_main(["detect", str(tmp_path / "p"), "-o", str(folder), "-q",
                               "--overlay", overlay] + cpu(tflite_model), capsys)
        assert rc == 0, err
        # named after the input, keeping its extension
        assert sorted(os.listdir(str(folder))) == sorted(os.path.basename(p) for p in pics)
        outs[overlay] = cv2.imread(str(folder / "astronaut.png"))
    orig = cv2.imread(pics[0])
    assert np.array_equal(outs["none"], orig)               # png: lossless, nothing drawn
    box_only = (outs["box"] != orig).any(axis=2)
    full = (outs["box,labels,conf"] != orig).any(axis=2)
    assert box_only.sum() > 0 and full.sum() > box_only.sum()   # the tags add pixels
    rc, _, err = run_main(["detect", pics[0], "--overlay", "boxes"] + cpu(tflite_model),
                          capsys)
    assert rc == 1 and one_line_error(err) and "--overlay boxes" in err


def test_box_and_text_scale_with_the_frame():
    from trtssd.io.draw import scaled_sizes
    t_small, f_small = scaled_sizes(240, 320)
    t_big, f_big = scaled_sizes(2160, 3840)
    assert t_small >= 1 and t_big >= 4 * t_small and f_big >= 4 * f_small


def test_help_has_examples_and_every_flag_says_what_it_does(capsys):
    parser = cli.build_parser()
    detect = parser._subparsers._group_actions[0].choices["detect"]
    for action in detect._actions:
        if action.dest != "help":
            assert action.help, action.option_strings or action.dest
    with pytest.raises(SystemExit):
        cli.main(["detect", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "trtssd detect photos/" in out and "--classes" in out


@pytest.mark.parametrize("flag,value,expect", [
    ("--threshold", "2.0", "--threshold 2.0: must be between 0 and 1"),
    ("--batch", "0", "--batch 0: must be a whole number >= 1"),
    ("--max-frames", "-1", "--max-frames -1: must be >= 0"),
    ("--duration", "0", "--duration 0.0: must be more than 0"),
    ("--loop", "0", "--loop 0: must be >= 1"),
])
def test_errors_name_the_flag_typed(flag, value, expect, capsys):
    rc, _, err = run_main(["detect", "synthetic:32x32", "--device", "cpu", flag, value],
                          capsys)
    assert rc == 1 and one_line_error(err) and expect in err, err
    assert "_" not in err.split(":", 2)[2].split(";")[0].replace("--max-frames", "")
    assert "depth" not in err or flag == "--depth"          # no depth hint on other flags


def test_errors_from_below_are_translated_to_flags():
    from trtssd.core.errors import InputError
    from trtssd.pipeline import PipelineOptions
    with pytest.raises(InputError) as e:
        PipelineOptions(score_threshold=2.0)
    assert cli.translate(e.value).startswith("--threshold 2.0: ")
    assert cli.translate("max_frames=-3: must be >= 0") == "--max-frames -3: must be >= 0"


def test_info_on_a_pip_install_without_a_gpu(capsys, monkeypatch):
    monkeypatch.delenv("TRTSSD_MODEL", raising=False)
    from trtssd.commands import info as I
    from trtssd.models import resolve
    monkeypatch.setattr(resolve, "_checkout_models_dir", lambda: "/nonexistent")
    rc, out, err = run_main(["info", "--json"], capsys)
    assert rc == 0
    facts = json.loads(out)
    assert "engines/README" not in out and "--model" in facts["model"]
    if not I.nvidia_driver_present():
        assert "pip install pycuda" not in out and "no NVIDIA GPU" in facts["gpu_reason"]
