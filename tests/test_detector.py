"""The facade: ``import trtssd`` does no work, and ``trtssd.Detector`` gives the same
detections as the pipeline and the command, on the CPU with the real model (GPU: same check
against the CPU backend where a GPU is here)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bgr(name):
    pytest.importorskip("skimage")
    from skimage import data
    return np.ascontiguousarray(getattr(data, name)()[..., :3][..., ::-1])


def test_import_is_lazy_and_every_exported_name_resolves():
    code = r"""
import sys, trtssd
before = sorted(m for m in sys.modules if m.startswith('trtssd'))
names = {n: getattr(trtssd, n) for n in trtssd.__all__}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in
               ('pycuda', 'torch', 'cv2', 'onnx', 'onnxruntime', 'tensorrt'))
print(before); print(heavy); print(sorted(set(trtssd.__all__) - set(dir(trtssd))))
"""
    out = subprocess.check_output([sys.executable, "-c", code], cwd=REPO,
                                  universal_newlines=True).splitlines()
    assert out[0] == "['trtssd']", "importing trtssd imported more: %s" % out[0]
    assert out[1] == "[]", "resolving the exported names imported %s" % out[1]
    assert out[2] == "[]"
    import trtssd
    for name in ("Detector", "Detections", "LabelMap", "PreprocessOptions", "cpu_preprocess",
                 "GpuPreprocessor", "GpuPostprocessor", "open_source", "open_sink",
                 "PipelineOptions", "run", "TrtssdError", "InputError", "ModelError",
                 "EngineError", "EnvironmentProblem"):
        assert name in trtssd.__all__
    with pytest.raises(AttributeError):
        trtssd.no_such_name


@pytest.fixture(scope="module")
def detector(tflite_model, label_file):
    pytest.importorskip("onnxruntime")
    import trtssd
    with trtssd.Detector(tflite_model, labels=label_file, backend="onnxruntime",
                         device="cpu", max_batch=2) as det:
        yield det


def test_one_frame_has_its_known_content_in_frame_pixels(detector):
    im = bgr("chelsea")
    dets = detector(im)
    assert dets.labels is not None and len(dets.labels) == len(dets)
    best = int(np.argmax(dets.scores))
    assert dets.labels[best] == "cat" and dets.scores[best] > 0.5
    h, w = im.shape[:2]
    assert np.all(dets.boxes[:, [0, 2]] <= w + 1) and np.all(dets.boxes[:, [1, 3]] <= h + 1)
    # a cat fills most of this picture: its box is in frame pixels, not 0..1 or 300x300
    x1, y1, x2, y2 = dets.boxes[best]
    assert (x2 - x1) > 0.3 * w and (y2 - y1) > 0.3 * h


def test_batch_splits_by_max_batch_and_equals_single_calls(detector):
    frames = [bgr("astronaut"), bgr("chelsea"), bgr("coffee")]   # 3 frames, max_batch 2
    many = detector.batch(frames)
    assert len(many) == 3
    for f, d in zip(frames, many):
        one = detector(f)
        np.testing.assert_allclose(d.boxes, one.boxes, atol=1e-3)
        np.testing.assert_allclose(d.scores, one.scores, atol=1e-5)
        assert d.labels == one.labels
    assert detector.batch([]) == []


def test_run_matches_the_command(detector, tflite_model, label_file, tmp_path):
    cv2 = pytest.importorskip("cv2")
    pic = str(tmp_path / "cat.png")
    cv2.imwrite(pic, bgr("chelsea"))
    out = tmp_path / "api.jsonl"
    stats = detector.run(pic, str(out))
    assert stats.frames == 1
    from trtssd.commands.cli import main
    cli_out = tmp_path / "cli.jsonl"
    assert main(["detect", pic, "--model", tflite_model, "--labels", label_file,
                 "--backend", "onnxruntime", "--device", "cpu", "-o", str(cli_out), "-q"]) == 0
    a = [json.loads(l) for l in out.read_text().splitlines()]
    b = [json.loads(l) for l in cli_out.read_text().splitlines()]
    assert [r["detections"] for r in a] == [r["detections"] for r in b]
    direct = detector(bgr("chelsea"))
    assert [d["label"] for d in a[0]["detections"]] == direct.labels


def test_bad_settings_fail_before_the_model_is_loaded(tflite_model):
    import trtssd
    with pytest.raises(trtssd.InputError, match="score_threshold"):
        trtssd.Detector(tflite_model, threshold=2.0)
    with pytest.raises(trtssd.InputError, match="max_batch"):
        trtssd.Detector(tflite_model, max_batch=0)
    with pytest.raises(trtssd.InputError, match="mode"):
        trtssd.Detector(tflite_model, mode="fastest")


def test_close_releases_and_later_use_says_so(tflite_model):
    pytest.importorskip("onnxruntime")
    import trtssd
    det = trtssd.Detector(tflite_model, backend="onnxruntime", device="cpu")
    backend = det.backend
    det(bgr("coffee"))
    det.close()
    det.close()                        # twice is fine
    assert det.backend is None and backend.session is None     # the backend was closed
    with pytest.raises(trtssd.InputError, match="closed"):
        det(bgr("coffee"))
    with pytest.raises(trtssd.InputError, match="shape"):
        trtssd.Detector(tflite_model, backend="onnxruntime", device="cpu")(object())


@pytest.mark.gpu
def test_gpu_detector_agrees_with_the_cpu(cuda_context, tflite_model, label_file, detector):
    pytest.importorskip("torch")
    import trtssd
    frames = [bgr("astronaut"), bgr("chelsea")]
    with trtssd.Detector(tflite_model, labels=label_file, backend="torch", device="cuda") as g:
        got = g.batch(frames)
    for f, d in zip(frames, got):
        ref = detector(f)
        keep = ref.scores >= 0.5
        kg = d.scores >= 0.5
        assert ref[keep].labels == d[kg].labels
        np.testing.assert_allclose(d[kg].boxes, ref[keep].boxes, atol=2.0)
