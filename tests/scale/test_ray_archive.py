"""Ray for archives, on a local Ray cluster on the CPU (2 CPUs, ONNX Runtime): every input's
result file whole, its frames in order with the one-process detections, a broken file tried
again and then reported, names made unique, Parquet where pyarrow is here, and the command."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trtssd.core.errors import EnvironmentProblem, InputError
from trtssd.scale import ray_archive

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pictures():
    pytest.importorskip("skimage")
    from skimage import data
    return [np.ascontiguousarray(getattr(data, n)()[..., :3][..., ::-1])
            for n in ("chelsea", "astronaut", "coffee")]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two short videos, a picture, a folder of pictures, a second video of the same name,
    and a file that is no video."""
    cv2 = pytest.importorskip("cv2")
    root = tmp_path_factory.mktemp("archive")
    ims = pictures()
    files = []
    for k, (name, n) in enumerate((("a.avi", 12), ("b.avi", 9))):
        p = str(root / name)
        w = cv2.VideoWriter(p, cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
        for i in range(n):
            w.write(cv2.resize(ims[(i // 4 + k) % 3], (320, 240)))
        w.release()
        files.append(p)
    os.makedirs(str(root / "again"))
    dup = str(root / "again" / "a.avi")
    os.link(files[0], dup)
    pics = root / "pics"
    os.makedirs(str(pics))
    for i, im in enumerate(ims):
        cv2.imwrite(str(pics / ("p%d.jpg" % i)), im)
    one = str(root / "cat.png")
    cv2.imwrite(one, ims[0])
    broken = str(root / "broken.mp4")
    with open(broken, "wb") as f:
        f.write(b"this is not a video" * 50)
    return {"videos": files, "dup": dup, "pics": str(pics), "image": one, "broken": broken}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray)")
    pytest.importorskip("onnxruntime")
    import logging
    import time
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            break
        except OSError as e:      # a shared CI machine out of memory for a moment (ENOMEM)
            ray.shutdown()
            if attempt == 2:
                pytest.skip("could not start a local Ray cluster here: %s" % e)
            time.sleep(5)
    yield ray
    ray.shutdown()


def cpu(model, labels):
    return dict(model=model, labels=labels, backend="onnxruntime", device="cpu")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_inputs_and_result_names(tmp_path, archive):
    ins = ray_archive.expand_inputs([archive["videos"][0], archive["pics"], archive["image"]])
    assert [k for _, k in ins] == ["video", "pictures", "image"]
    with pytest.raises(InputError, match="does not exist"):
        ray_archive.expand_inputs([str(tmp_path / "nope.mp4")])
    os.makedirs(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="holds no pictures"):
        ray_archive.expand_inputs([str(tmp_path / "empty")])
    outs = ray_archive.output_paths([("x/a.avi", "video"), ("y/a.mp4", "video"),
                                     ("trtssd-summary.mp4", "video"), ("z/a.avi", "video")],
                                    "o", "jsonl")
    assert [os.path.basename(p) for p in outs] == ["a.jsonl", "a-2.jsonl",
                                                   "trtssd-summary.jsonl", "a-3.jsonl"]


def test_without_ray_the_error_names_the_install(monkeypatch, tmp_path, archive, tflite_model):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EnvironmentProblem, match="pip install ray"):
        ray_archive.run_archive([archive["image"]], str(tmp_path / "o"), model=tflite_model)


def test_an_archive_on_a_local_cluster(ray_cluster, tmp_path, archive, tflite_model,
                                       label_file):
    import trtssd
    from trtssd.io.sinks import JsonLinesSink
    out = str(tmp_path / "results")
    files = archive["videos"] + [archive["broken"], archive["pics"], archive["dup"],
                                 archive["image"]]
    lines = []
    summary = ray_archive.run_archive(files, out, actors=2, retries=1, loop=2,
                                      log=lines.append, **cpu(tflite_model, label_file))
    assert summary["files"] == 6 and summary["files_done"] == 5 and summary["actors"] == 2
    assert summary["actor_restarts"] == 0       # a broken file is the file's error, not the actor's
    assert summary["failures"] == [{"file": archive["broken"], "attempts": 2, "error": (
        summary["failures"][0]["error"])}]
    assert "cannot open video file" in summary["failures"][0]["error"]
    assert any("trying again" in line for line in lines)
    assert sorted(os.listdir(out)) == ["a-2.jsonl", "a.jsonl", "b.jsonl", "cat.jsonl",
                                       "pics.jsonl", "trtssd-summary.json"]   # no part files
    assert summary["frames"] == 12 + 9 + 3 + 12 + 2
    assert json.load(open(os.path.join(out, "trtssd-summary.json")))["frames"] == 38
    # every result is the one-process Detector's, frame for frame
    with trtssd.Detector(**cpu(tflite_model, label_file)) as det:
        for video, name in ((archive["videos"][0], "a"), (archive["videos"][1], "b"),
                            (archive["dup"], "a-2")):
            want = str(tmp_path / ("want-%s.jsonl" % name))
            with JsonLinesSink(want, det.labels) as sink:
                det.run(video, sink)
            got = read_jsonl(os.path.join(out, name + ".jsonl"))
            assert [r["frame"] for r in got] == list(range(len(got)))
            assert got == read_jsonl(want)
        pics = read_jsonl(os.path.join(out, "pics.jsonl"))
        assert [r["source"] for r in pics] == [os.path.join(archive["pics"], "p%d.jpg" % i)
                                              for i in range(3)]
        import cv2
        from trtssd.io.sinks import detection_dicts
        for r in pics:
            want = detection_dicts(det(cv2.imread(r["source"])))     # the JPEG, decoded
            assert [d["label"] for d in r["detections"]] == [d["label"] for d in want]
            assert np.allclose([d["score"] for d in r["detections"]],
                               [d["score"] for d in want], atol=1e-4)


def test_a_file_whose_actor_died_goes_to_a_new_actor(ray_cluster, tmp_path, archive,
                                                      tflite_model, label_file):
    import signal
    killed = []

    def log(line):        # called in the driver when the actors are up, before any file
        if line.startswith("actors ready: ") and not killed:
            pid = int(line.split(", ")[0].rsplit(" pid ", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    lines = []
    summary = ray_archive.run_archive(archive["videos"] + [archive["image"]],
                                      str(tmp_path / "o"), actors=2, retries=1,
                                      log=lambda line: (lines.append(line), log(line)),
                                      setup_timeout_s=240, **cpu(tflite_model, label_file))
    # one death, one replacement: the two files queued on the dead actor both fail with it,
    # and the second failure must not replace the replacement (which then holds the freed CPU
    # while its successor waits for it)
    assert killed and summary["actor_restarts"] == 1, lines
    assert sum(line.startswith("actor restarted: ") for line in lines) == 1, lines
    assert summary["files_done"] == 3 and not summary["failures"]
    assert summary["frames"] == 12 + 9 + 1


class _FakeRay(object):
    """ray.wait and ray.get over a dict ref -> ("ready", value) / ("error", exc) / None."""

    def __init__(self, refs):
        self.refs = refs

    def wait(self, refs, timeout=None):
        return [r for r in refs if self.refs[r] is not None], []

    def get(self, ref):
        state, value = self.refs[ref]
        if state == "error":
            raise value
        return value


def test_a_replacement_actor_that_cannot_start_ends_the_run():
    import time
    fake = _FakeRay({"up": ("ready", "host pid 7"), "slow": None,
                     "broken": ("error", RuntimeError("no module named trtssd"))})
    lines = []
    starting = {0: ("up", time.perf_counter()), 1: ("slow", time.perf_counter())}
    ray_archive._check_replacements(fake, starting, 30.0, "m.onnx", lines.append)
    assert lines == ["actor restarted: host pid 7"] and list(starting) == [1]
    starting[1] = ("slow", time.perf_counter() - 31.0)       # asked for 31 s ago
    with pytest.raises(EnvironmentProblem, match="did not start within 30 s"):
        ray_archive._check_replacements(fake, starting, 30.0, "m.onnx", lines.append)
    with pytest.raises(EnvironmentProblem, match="could not load the detector.*no module named"):
        ray_archive._check_replacements(fake, {0: ("broken", time.perf_counter())}, 30.0,
                                        "m.onnx", lines.append)


def test_parquet_results(ray_cluster, tmp_path, archive, tflite_model, label_file):
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet results need pyarrow")
    out = str(tmp_path / "pq")
    summary = ray_archive.run_archive([archive["videos"][1], archive["pics"]], out, fmt="parquet",
                                      actors=1, setup_timeout_s=240,
                                      **cpu(tflite_model, label_file))
    assert summary["files_done"] == 2 and not summary["failures"]
    rows = pq.read_table(os.path.join(out, "b.parquet")).to_pylist()
    assert [r["frame"] for r in rows] == list(range(9))
    assert all(r["source"] == archive["videos"][1] for r in rows)
    assert any(d["label"] == "cat" for r in rows for d in r["detections"])


def test_the_command(tmp_path, archive, tflite_model, label_file):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray)")
    out = str(tmp_path / "cli")
    cmd = [sys.executable, "-m", "trtssd", "detect", archive["videos"][1], archive["broken"],
           "--ray", "--ray-actors", "1", "--ray-retries", "0", "--backend", "onnxruntime",
           "--model", tflite_model, "--labels", label_file, "-o", out]
    p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    assert p.returncode == 1, p.stderr              # one file failed: reported, exit 1
    assert "ray: 1 of 2 files, 9 frames" in p.stderr and "broken.mp4: InputError" in p.stderr
    assert [r["frame"] for r in read_jsonl(os.path.join(out, "b.jsonl"))] == list(range(9))
    bad = subprocess.run(cmd[:-1] + [str(tmp_path / "x.jsonl")], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=60)
    assert bad.returncode == 1 and "give it as -o FOLDER" in bad.stderr
