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
    rc, out, err = run_main(["detect", pics[0], "-o", "kafka://host:9092/topic"]
                            + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "kafka://" in err
    assert "known: file://" in err and "mqtt://" in err         # the registered ones named
    assert not os.path.exists(str(tmp_path / "kafka:"))       # no folder tree
    got = []

    class Fake(K.Sink):
        def __init__(self, url, **kw):
            self.url = url

        def write(self, frame, dets):
            got.append((self.url, frame.source_id, len(dets)))
    monkeypatch.setitem(K.SINK_SCHEMES, "kafka", Fake)       # what a registered scheme gets
    rc, out, err = run_main(["detect", pics[0], "-o", "kafka://host:9092/topic", "-q"]
                            + cpu(tflite_model), capsys)
    assert rc == 0, err
    assert got and got[0][:2] == ("kafka://host:9092/topic", pics[0])


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


# ---------------------------------------------------------------------------------------------
# exit codes and signals: a real `python -m trtssd detect` gets real signals
# ---------------------------------------------------------------------------------------------

def _spawn(args, tflite_model, **kw):
    return subprocess.Popen([sys.executable, "-m", "trtssd", "detect"] + args
                            + cpu(tflite_model), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, **kw)


def _wait_for_lines(path, n, proc, timeout=60):
    import time
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError("ended early: %s" % (proc.communicate()[1],))
        if os.path.exists(path):
            with open(path) as f:
                if f.read().count("\n") >= n:
                    return
        time.sleep(0.1)
    raise AssertionError("no %d lines in %s after %d s" % (n, path, timeout))


def _frames_in(video):
    cap = cv2.VideoCapture(video)
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("mode", ["sync", "pipelined"])
def test_signal_finalises_every_output(sig, code, mode, tmp_path, tflite_model):
    import signal
    out, movie = str(tmp_path / "d.jsonl"), str(tmp_path / "a.mp4")
    p = _spawn(["synthetic:160x120@30", "-o", out, "-o", movie, "--mode", mode], tflite_model)
    try:
        _wait_for_lines(str(tmp_path / ".d.partial.jsonl"), 5, p)
        p.send_signal(getattr(signal, sig))
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, err
    assert "Traceback" not in err and "interrupted by signal" in err
    with open(out) as f:
        text = f.read()
    assert text.endswith("\n")
    recs = [json.loads(line) for line in text.splitlines()]    # whole lines only
    assert len(recs) >= 5 and [r["frame"] for r in recs] == sorted(r["frame"] for r in recs)
    assert _frames_in(movie) == len(recs)                       # playable: the index is there
    assert "%d written" % len(recs) in err
    assert not [n for n in os.listdir(str(tmp_path)) if "partial" in n]


def test_everything_written_exits_0_and_a_failed_source_does_not(tmp_path, tflite_model,
                                                                 capsys, monkeypatch):
    from trtssd.io import sources as S
    video = _video(tmp_path / "v.avi", n=6)
    out = str(tmp_path / "d.jsonl")
    rc, _, err = run_main(["detect", video, "-o", out, "-q"] + cpu(tflite_model), capsys)
    assert rc == 0 and len(jsonl(out)) == 6

    real_read = S.CaptureSource.read
    calls = []

    def failing(self, out=None):
        calls.append(1)
        if len(calls) > 3:
            raise S.SourceError("camera 0 stopped giving frames after 3 (test)")
        return real_read(self, out)
    monkeypatch.setattr(S.CaptureSource, "read", failing)
    rc, _, err = run_main(["detect", video, "-o", out, "-q"] + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "stopped giving frames" in err
    assert "3 frames were written before; the outputs hold them" in err
    assert len(jsonl(out)) == 3                                 # kept, whole lines


# ---------------------------------------------------------------------------------------------
# write failures: one line naming the path and the fix, exit 1, nothing half-written
# ---------------------------------------------------------------------------------------------

def _mount_tmpfs(path, opts):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return r.returncode == 0


@pytest.fixture
def read_only_dir(tmp_path):
    d = str(tmp_path / "ro")
    if os.geteuid() != 0:
        os.makedirs(d)
        os.chmod(d, 0o555)
        yield d
        os.chmod(d, 0o755)
        return
    if not _mount_tmpfs(d, "ro,size=64k"):      # root ignores permissions: a read-only mount
        pytest.skip("running as root and cannot mount a read-only tmpfs here")
    try:
        yield d
    finally:
        subprocess.run(["umount", d])


@pytest.fixture
def tiny_disk(tmp_path):
    d = str(tmp_path / "tiny")
    if os.geteuid() != 0 or not _mount_tmpfs(d, "size=48k"):
        pytest.skip("a full disk needs a tiny tmpfs (root and mount)")
    try:
        yield d
    finally:
        subprocess.run(["umount", d])


@pytest.mark.parametrize("name", ["d.jsonl", "a.mp4", "pictures"])
def test_read_only_folder(name, read_only_dir, tmp_path, tflite_model, capsys):
    video = _video(tmp_path / "v.avi", n=4)
    target = os.path.join(read_only_dir, name)
    rc, _, err = run_main(["detect", video, "-o", target, "-q"] + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err), err
    assert read_only_dir in err and ("-o" in err or "permissions" in err)
    assert os.listdir(read_only_dir) == []


def test_full_disk_dev_full(tmp_path, tflite_model, capsys):
    video = _video(tmp_path / "v.avi", n=4)
    for name in ("d.jsonl", "a.mp4"):
        link = str(tmp_path / name)
        os.symlink("/dev/full", link)
        rc, _, err = run_main(["detect", video, "-o", link, "-q"] + cpu(tflite_model), capsys)
        assert rc == 1 and one_line_error(err), err
        # a JSON line fails with ENOSPC; FFmpeg cannot even open an mp4 on a device
        assert link in err and ("no space" in err or "cannot write the video" in err), err
        if os.path.lexists(link):       # OpenCV removes a path its writer failed on
            os.remove(link)


def test_full_disk_leaves_no_half_written_video(tiny_disk, tmp_path, tflite_model, capsys):
    video = _video(tmp_path / "v.avi", n=40, size=(320, 240))
    target = os.path.join(tiny_disk, "a.mp4")
    rc, _, err = run_main(["detect", video, "-o", target, "-q"] + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and target in err, err
    assert os.listdir(tiny_disk) == []                        # no unplayable file left
    target = os.path.join(tiny_disk, "d.jsonl")
    many = _video(tmp_path / "m.avi", n=400, size=(64, 48))
    rc, _, err = run_main(["detect", many, "-o", target, "-q", "--threshold", "0.01"]
                          + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "no space" in err, err
    assert os.listdir(tiny_disk) == []


def test_reader_closing_the_pipe(tmp_path, tflite_model):
    video = _video(tmp_path / "v.avi", n=200)
    p = _spawn([video, "-o", "-", "-q"], tflite_model)
    first = p.stdout.readline()
    assert json.loads(first)["frame"] == 0
    p.stdout.close()                                          # the reader goes away
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 1, err
    assert one_line_error(err) and "closed the pipe" in err, err


def test_an_mp4_opencv_cannot_write(tmp_path, tflite_model, capsys, monkeypatch):
    class NoWriter(object):
        def __init__(self, *a):
            pass

        def isOpened(self):
            return False
    video = _video(tmp_path / "v.avi", n=3)
    monkeypatch.setattr(cv2, "VideoWriter", NoWriter)
    target = str(tmp_path / "a.mp4")
    rc, _, err = run_main(["detect", video, "-o", target, "-q"] + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and target in err and ".avi" in err
    assert os.listdir(str(tmp_path)) == ["v.avi"]


def test_read_only_and_corrupt_model_cache(read_only_dir, tmp_path, tflite_model, capsys,
                                           monkeypatch):
    from trtssd.models import resolve
    pics = _pictures(tmp_path / "p", names=("chelsea",), exts=(".jpg",))
    monkeypatch.setenv(resolve.CACHE_ENV, os.path.join(read_only_dir, "cache"))
    rc, _, err = run_main(["detect", pics[0], "-q"] + cpu(tflite_model), capsys)
    assert rc == 1 and one_line_error(err) and "TRTSSD_CACHE" in err, err
    cache = str(tmp_path / "cache")
    monkeypatch.setenv(resolve.CACHE_ENV, cache)
    out = str(tmp_path / "d.jsonl")
    rc, _, err = run_main(["detect", pics[0], "-q", "-o", out] + cpu(tflite_model), capsys)
    assert rc == 0, err
    good = jsonl(out)
    (cached,) = [os.path.join(cache, n) for n in os.listdir(cache) if n.endswith(".onnx")]
    with open(cached, "r+b") as f:                          # cut the cached conversion
        f.truncate(os.path.getsize(cached) // 3)
    rc, _, err = run_main(["detect", pics[0], "-q", "-o", out] + cpu(tflite_model), capsys)
    assert rc == 0 and err == "" and jsonl(out) == good       # rebuilt, not reported


# ---------------------------------------------------------------------------------------------
# damaged inputs: which frame, and the counts
# ---------------------------------------------------------------------------------------------

def test_damaged_frames_are_named_and_counted(tmp_path, tflite_model, capsys):
    video = _video(tmp_path / "v.avi", n=20)
    data = bytearray(open(video, "rb").read())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == 20
    data[starts[7]:starts[7] + 300] = b"\0" * 300              # frame 7's JPEG header gone
    bad = str(tmp_path / "bad.avi")
    open(bad, "wb").write(bytes(data))
    out = str(tmp_path / "d.jsonl")
    rc, _, err = run_main(["detect", bad, "-o", out] + cpu(tflite_model), capsys)
    assert rc == 1, err
    assert "frame 7 is damaged" in err
    assert "20 frames decoded" not in err and "19 frames decoded, 1 damaged (skipped), 19 " \
        "written" in err
    assert len(jsonl(out)) == 19


def test_truncated_video_and_jpeg_say_where(tmp_path, tflite_model, capsys):
    w = cv2.VideoWriter(str(tmp_path / "v.mkv"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        w.write(np.full((48, 64, 3), i * 10, np.uint8))
    w.release()
    data = open(str(tmp_path / "v.mkv"), "rb").read()
    cut = str(tmp_path / "cut.mkv")
    open(cut, "wb").write(data[:len(data) * 2 // 3])
    rc, _, err = run_main(["detect", cut] + cpu(tflite_model), capsys)
    assert "ended after frame" in err and "of the 20 it announces" in err and "truncated" in err
    pics = _pictures(tmp_path / "p")
    jpg = open(pics[1], "rb").read()
    open(pics[1], "wb").write(jpg[:len(jpg) // 2])
    out = str(tmp_path / "d.jsonl")
    rc, _, err = run_main(["detect", str(tmp_path / "p"), "-o", out] + cpu(tflite_model), capsys)
    assert rc == 1 and "picture 1 (%s) is a truncated JPEG" % pics[1] in err
    assert "2 frames decoded, 1 damaged (skipped), 2 written" in err
    assert [r["source"] for r in jsonl(out)] == [pics[0], pics[2]]


# ---------------------------------------------------------------------------------------------
# make: the tools run through the venv's interpreter, wherever they were installed
# ---------------------------------------------------------------------------------------------

def _fresh_copy(dest):
    """The checkout's files as a fresh clone has them (tracked and untracked-not-ignored)."""
    import shutil
    files = subprocess.check_output(["git", "ls-files", "--cached", "--others",
                                     "--exclude-standard"], cwd=REPO,
                                    universal_newlines=True).split("\n")
    for rel in filter(None, files):
        src = os.path.join(REPO, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


@pytest.mark.parametrize("base_has_vermin", [True, False])
def test_make_vermin_on_a_fresh_clone(base_has_vermin, tmp_path):
    import shutil
    if not shutil.which("make") or not shutil.which("git"):
        pytest.skip("make and git are needed")
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    env = dict(os.environ)
    if base_has_vermin:
        try:
            import vermin
        except ImportError:
            pytest.skip("vermin is not installed here to put in the base Python")
        # the base Python gets vermin through its user site (a throwaway PYTHONUSERBASE),
        # which a venv with the system's site-packages sees, as it would a base install
        env["PYTHONUSERBASE"] = str(tmp_path / "userbase")
        env.pop("PYTHONNOUSERSITE", None)
        user_site = subprocess.check_output([base_python, "-c", "import site; "
                                             "print(site.getusersitepackages())"], env=env,
                                            universal_newlines=True).strip()
        os.makedirs(user_site)
        with open(os.path.join(user_site, "outer.pth"), "w") as f:
            f.write(os.path.dirname(os.path.dirname(vermin.__file__)) + "\n")
        base = os.path.dirname(os.path.dirname(base_python))
    else:
        base = str(tmp_path / "bare")           # a base Python without vermin
        env["PYTHONNOUSERSITE"] = "1"
        subprocess.check_call([base_python, "-m", "venv", base])
    py = os.path.join(base, "bin", os.path.basename(base_python)) if base_has_vermin \
        else base + "/bin/python"
    r = subprocess.run([py, "-c", "import vermin"], stderr=subprocess.DEVNULL, env=env)
    assert (r.returncode == 0) == base_has_vermin
    clone = str(tmp_path / "clone")
    _fresh_copy(clone)
    r = subprocess.run(["make", "-C", clone, "vermin", "PYTHON=%s" % py],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600, env=env)
    if not base_has_vermin and "installing: vermin" in r.stdout and r.returncode != 0 and \
            ("Could not find" in r.stdout or "No matching distribution" in r.stdout):
        pytest.skip("PyPI is not reachable to install vermin into the bare venv")
    assert r.returncode == 0, r.stdout[-3000:]
    assert "No such file" not in r.stdout
    installed = "installing: vermin" in r.stdout
    assert installed is (not base_has_vermin), r.stdout[-2000:]


def test_detect_is_built_on_the_detector(tmp_path, tflite_model, capsys, monkeypatch):
    from trtssd import detector
    calls = []
    real = detector.Detector.run

    def spy(self, sources, sinks=None, **kw):
        calls.append((len(sources), kw.get("max_frames")))
        return real(self, sources, sinks, **kw)
    monkeypatch.setattr(detector.Detector, "run", spy)
    rc, _, err = run_main(["detect", "synthetic:40x30", "--max-frames", "2", "-q"]
                          + cpu(tflite_model), capsys)
    assert rc == 0, err
    assert calls == [(1, 2)]                  # one path for the command and the Python API


def test_batch_error_has_no_depth_hint():
    from trtssd.core.errors import InputError
    from trtssd.pipeline import PipelineOptions
    with pytest.raises(InputError) as e:
        PipelineOptions(batch=0)
    assert "depth" not in str(e.value)
    with pytest.raises(InputError, match="double buffering"):
        PipelineOptions(depth=0)
