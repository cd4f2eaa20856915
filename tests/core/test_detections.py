"""Detections validation and indexing; LabelMap reading and its errors."""
import json

import numpy as np
import pytest

from trtssd.core.detections import Detections, LabelMap
from trtssd.core.errors import InputError, ModelError


def make(k=5, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, size=(k, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 100, size=(k, 2))], axis=1)
    names = ["n%d" % i for i in range(k)] if labels else None
    return Detections(boxes, rng.uniform(0, 1, k), rng.integers(1, 91, k), names)


def test_validated_dtypes_and_len():
    d = make()
    assert len(d) == 5
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (5, 4)
    assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int32


def test_mask_slice_int_and_index_array():
    d = make(6)
    m = d.scores > 0.5
    sub = d[m]
    assert len(sub) == int(m.sum())
    np.testing.assert_array_equal(sub.boxes, d.boxes[m])
    assert sub.labels == [n for n, k in zip(d.labels, m) if k]
    assert d[1:3].labels == d.labels[1:3]
    assert d[-1].labels == [d.labels[-1]] and len(d[0]) == 1
    assert d[[4, 0]].class_ids.tolist() == [d.class_ids[4], d.class_ids[0]]
    assert len(d[np.zeros(6, bool)]) == 0
    with pytest.raises(InputError, match="one entry per detection"):
        d[np.ones(5, bool)]
    with pytest.raises(IndexError):
        d[6]


def test_to_dicts_is_json_and_uses_labels():
    d = make(3)
    rows = d.to_dicts()
    json.dumps(rows)
    assert set(rows[0]) == {"box", "score", "class_id", "label"}
    assert rows[1]["label"] == "n1" and isinstance(rows[1]["class_id"], int)
    assert len(rows[0]["box"]) == 4
    lm = LabelMap(["???"] + ["c%d" % i for i in range(1, 91)])
    plain = make(3, labels=False)
    assert plain.to_dicts()[0]["label"] is None
    assert plain.to_dicts(lm)[0]["label"] == "c%d" % plain.class_ids[0]
    assert plain.with_labels(lm).labels[2] == "c%d" % plain.class_ids[2]


def test_empty_and_concatenate():
    e = Detections.empty()
    assert len(e) == 0 and e.boxes.shape == (0, 4) and e.to_dicts() == []
    a, b = make(2, seed=1), make(3, seed=2)
    c = Detections.concatenate([a, Detections.empty(with_labels=True), b])
    assert len(c) == 5 and c.labels == a.labels + b.labels
    assert Detections.concatenate([a, make(1, labels=False)]).labels is None
    assert len(Detections.concatenate([])) == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(boxes=np.zeros((2, 3))), r"\[K, 4\]"),
    (dict(scores=np.zeros(3)), "2 boxes but 3 scores"),
    (dict(class_ids=[1.5, 2]), "integers"),
    (dict(boxes=[[0, 0, 1, np.nan], [0, 0, 1, 1]]), "finite"),
    (dict(boxes=[[5, 0, 1, 1], [0, 0, 1, 1]]), "x2 >= x1"),
    (dict(class_ids=[-1, 2]), ">= 0"),
    (dict(labels=["a"]), "1 labels for 2 boxes"),
])
def test_invalid_arrays_are_clear_errors(kwargs, match):
    args = dict(boxes=[[0, 0, 1, 1], [1, 1, 2, 2]], scores=[0.5, 0.6], class_ids=[1, 2],
                labels=None)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        Detections(**args)


def test_labelmap_real_file(label_file):
    lm = LabelMap.from_file(label_file, num_classes=91)
    assert len(lm) == 91 and lm[0] == "???" and lm[1] == "person" and lm[18] == "dog"
    assert lm.name(500) == "class 500"


def test_labelmap_errors(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text(u"???\nperson\nbicycle\n\n\n")
    assert len(LabelMap.from_file(str(p), 3)) == 3          # trailing blank lines ignored
    with pytest.raises(ModelError, match="has 3 names but the model has 91 classes"):
        LabelMap.from_file(str(p), num_classes=91)
    with pytest.raises(ModelError, match="background line 0"):
        LabelMap.from_file(str(p), num_classes=4)
    with pytest.raises(ModelError, match="does not exist"):
        LabelMap.from_file(str(tmp_path / "missing.txt"))
    e = tmp_path / "empty.txt"
    e.write_text(u"\n\n")
    with pytest.raises(ModelError, match="empty"):
        LabelMap.from_file(str(e))
    b = tmp_path / "model.tflite"
    b.write_bytes(b"\x1c\x00\x00\x00TFL3\x00\x00\xff\xfe")
    with pytest.raises(ModelError, match="not UTF-8|binary"):
        LabelMap.from_file(str(b))


@pytest.mark.parametrize("labels", [True, False])
def test_split_gives_what_one_record_per_run_gives(labels):
    # Detections.split (a batch's postprocessing) against one constructor call per record,
    # empty records included; each record's arrays are its own rows
    d = make(9, labels=labels, seed=3)
    counts = [4, 0, 3, 2]
    parts = Detections.split(d.boxes, d.scores, d.class_ids, d.labels, counts)
    a = 0
    assert len(parts) == len(counts)
    for part, k in zip(parts, counts):
        want = Detections(d.boxes[a:a + k], d.scores[a:a + k], d.class_ids[a:a + k],
                          None if d.labels is None else d.labels[a:a + k])
        assert type(part) is Detections and len(part) == k
        np.testing.assert_array_equal(part.boxes, want.boxes)
        np.testing.assert_array_equal(part.scores, want.scores)
        np.testing.assert_array_equal(part.class_ids, want.class_ids)
        assert part.labels == want.labels
        assert part.boxes.dtype == np.float32 and part.class_ids.dtype == np.int32
        a += k
    assert parts[1].boxes.shape == (0, 4)


def test_split_checks_every_row_and_the_counts():
    d = make(6, seed=4)
    boxes = d.boxes.copy()
    boxes[5, 2] = boxes[5, 0] - 1                      # the last record's box is inverted
    with pytest.raises(InputError, match="x2 >= x1"):
        Detections.split(boxes, d.scores, d.class_ids, None, [3, 3])
    scores = d.scores.copy()
    scores[4] = np.nan
    with pytest.raises(InputError, match="finite"):
        Detections.split(d.boxes, scores, d.class_ids, None, [2, 4])
    with pytest.raises(InputError, match="add up to 5 of 6"):
        Detections.split(d.boxes, d.scores, d.class_ids, None, [2, 3])
    with pytest.raises(InputError, match="5 labels for 6 boxes"):
        Detections.split(d.boxes, d.scores, d.class_ids, ["x"] * 5, [6])
