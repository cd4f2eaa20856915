"""Detections of one frame, and the label map that names their classes.

``Detections`` holds K boxes in frame pixels (x1, y1, x2, y2), their scores and class ids
(the model's score column: 1..90 are the COCO ids for the COCO SSD, 0 is the background and
never reported), and optionally the label name of each. It validates its arrays on
construction, can be indexed by a boolean mask, an index array or a slice, and turns into
plain dicts for JSON lines. ``LabelMap`` reads a label file (one name a line, line 0 the
background) and checks it against the model's class count.
"""
import io
import os

import numpy as np

from .errors import InputError, ModelError


class Detections(object):
    """K detections: ``boxes`` [K, 4] float32 (x1, y1, x2, y2, frame pixels), ``scores`` [K]
    float32, ``class_ids`` [K] int32, ``labels`` a list of K names or None."""

    __slots__ = ("boxes", "scores", "class_ids", "labels")

    def __init__(self, boxes, scores, class_ids, labels=None):
        self.boxes, self.scores, self.class_ids, self.labels = _checked(boxes, scores,
                                                                        class_ids, labels)

    @classmethod
    def split(cls, boxes, scores, class_ids, labels, counts):
        """One Detections per run of ``counts`` rows of the arrays (``labels`` a list or None),
        checked once for all of them as the constructor checks one: what a batch's
        postprocessing makes per frame without checking each frame's few rows again. Each
        record's arrays are views of the checked ones."""
        boxes, scores, class_ids, labels = _checked(boxes, scores, class_ids, labels)
        out = []
        a = 0
        new = object.__new__
        for k in counts:
            b = a + int(k)
            d = new(cls)
            d.boxes, d.scores, d.class_ids = boxes[a:b], scores[a:b], class_ids[a:b]
            d.labels = None if labels is None else labels[a:b]
            out.append(d)
            a = b
        if a != boxes.shape[0]:
            raise InputError("Detections.split: the counts add up to %d of %d rows; pass one "
                             "count per record, covering every row" % (a, boxes.shape[0]))
        return out

    @classmethod
    def empty(cls, with_labels=False):
        """No detections (with an empty label list when ``with_labels``)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int32), [] if with_labels else None)

    @classmethod
    def concatenate(cls, items):
        """One Detections from several (labels kept only if every part has them)."""
        items = list(items)
        if not items:
            return cls.empty()
        for d in items:
            if not isinstance(d, Detections):
                raise InputError("Detections.concatenate takes Detections, got %s"
                                 % type(d).__name__)
        labels = None
        if all(d.labels is not None for d in items):
            labels = [s for d in items for s in d.labels]
        return cls(np.concatenate([d.boxes for d in items]),
                   np.concatenate([d.scores for d in items]),
                   np.concatenate([d.class_ids for d in items]), labels)

    def __len__(self):
        return int(self.boxes.shape[0])

    def __getitem__(self, index):
        """Select by a boolean mask [K], an integer index array, a slice or one integer."""
        k = len(self)
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -k <= i < k:
                raise IndexError("detection %d out of range (%d detections)" % (i, k))
            index = [i % k]
        elif isinstance(index, slice):
            index = np.arange(k)[index]
        else:
            index = np.asarray(index)
            if index.dtype == np.bool_:
                if index.shape != (k,):
                    raise InputError("Detections: boolean mask of shape %s for %d detections; "
                                     "the mask needs one entry per detection"
                                     % (index.shape, k))
                index = np.flatnonzero(index)
            elif index.size == 0:
                index = np.zeros(0, np.intp)
            elif not np.issubdtype(index.dtype, np.integer):
                raise InputError("Detections: index with a boolean mask, integers or a slice, "
                                 "not %s" % index.dtype)
        index = np.asarray(index, dtype=np.intp).reshape(-1)
        if index.size and (index.max() >= k or index.min() < -k):
            raise IndexError("detection index out of range (%d detections)" % k)
        labels = None if self.labels is None else [self.labels[i] for i in index]
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index], labels)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def with_labels(self, label_map):
        """A copy whose ``labels`` name each class id through ``label_map`` (LabelMap/list)."""
        names = [_name_of(label_map, int(c)) for c in self.class_ids]
        return Detections(self.boxes, self.scores, self.class_ids, names)

    def to_dicts(self, label_map=None):
        """[{"box": [x1, y1, x2, y2], "score", "class_id", "label"}] with plain Python types.

        ``label`` is this record's label, else the name from ``label_map``, else None.
        """
        out = []
        for i in range(len(self)):
            cid = int(self.class_ids[i])
            if self.labels is not None:
                label = self.labels[i]
            elif label_map is not None:
                label = _name_of(label_map, cid)
            else:
                label = None
            out.append({"box": [round(float(v), 2) for v in self.boxes[i]],
                        "score": round(float(self.scores[i]), 5),
                        "class_id": cid, "label": label})
        return out

    def __repr__(self):
        return "Detections(%d: %s)" % (len(self), ", ".join(
            "%s %.2f" % (self.labels[i] if self.labels else self.class_ids[i], self.scores[i])
            for i in range(min(len(self), 5))) + (", ..." if len(self) > 5 else ""))


def _checked(boxes, scores, class_ids, labels):
    """The arrays of K detections as Detections keeps them, or InputError naming what is
    wrong: boxes [K, 4] float32 finite with x2 >= x1 and y2 >= y1, scores [K] float32
    finite, class_ids [K] int32 >= 0 (integral values), labels K strings or None."""
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError("Detections: boxes must be [K, 4] (x1, y1, x2, y2), got shape %s; "
                         "pass one row per detection" % (boxes.shape,))
    k = boxes.shape[0]
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    class_ids = np.asarray(class_ids)
    if class_ids.size and class_ids.dtype.kind not in "iu":
        if not (np.mod(class_ids, 1) == 0).all():
            raise InputError("Detections: class_ids must be integers (score column "
                             "indices), got %s values; round or cast them first"
                             % class_ids.dtype)
    class_ids = class_ids.astype(np.int32).reshape(-1)
    if scores.shape[0] != k or class_ids.shape[0] != k:
        raise InputError("Detections: %d boxes but %d scores and %d class ids; pass one "
                         "score and one class id per box"
                         % (k, scores.shape[0], class_ids.shape[0]))
    if k and not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise InputError("Detections: boxes and scores must be finite (NaN or inf found); "
                         "the model's outputs or the decoding are broken upstream")
    if k and (boxes[:, 2:] < boxes[:, :2]).any():
        raise InputError("Detections: every box needs x2 >= x1 and y2 >= y1 (corner order "
                         "x1, y1, x2, y2); reorder the coordinates")
    if k and (class_ids < 0).any():
        raise InputError("Detections: class ids must be >= 0, got %d" % class_ids.min())
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != k:
            raise InputError("Detections: %d labels for %d boxes; pass one name per box "
                             "or labels=None" % (len(labels), k))
    return boxes, scores, class_ids, labels


def _name_of(label_map, class_id):
    """The name of one class id (label_names' rule)."""
    return label_names(label_map, [class_id])[0]


def label_names(labels, class_ids):
    """The names of ``class_ids`` through ``labels`` (LabelMap or list), or None without: the
    one class-id-to-name rule, the label map's line ``class_id`` (the score column), else
    "class N"."""
    if labels is None:
        return None
    names = labels.names if isinstance(labels, LabelMap) else labels
    n = len(names)
    ids = class_ids.tolist() if hasattr(class_ids, "tolist") else class_ids
    return [str(names[c]) if 0 <= c < n else "class %d" % c for c in map(int, ids)]


def check_labels(labels, num_classes):
    """ModelError unless ``labels`` (LabelMap, list or None) has one name per score column."""
    if labels is None:
        return
    if not isinstance(labels, LabelMap):
        labels = LabelMap(labels)
    labels.check(num_classes)


class LabelMap(object):
    """Class names indexed by the model's score column; ``names[0]`` is the background."""

    def __init__(self, names, source=None):
        self.names = [str(n) for n in names]
        self.source = source
        if not self.names:
            raise ModelError("label map %s is empty; give the model's label file (one name a "
                             "line, line 0 the background '???')" % (source or "(list)"))

    @classmethod
    def from_file(cls, path, num_classes=None):
        """Read one name a line (trailing blank lines ignored); check the count against the
        model's ``num_classes`` (background included) when given."""
        path = os.fspath(path) if hasattr(os, "fspath") else path
        if not os.path.isfile(path):
            raise ModelError("label file %s does not exist; pass the model's label file "
                             "(coco_labels.txt from the model archive for the COCO SSD)" % path)
        try:
            with io.open(path, "r", encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError:
            raise ModelError("label file %s is not UTF-8 text (a model file given as labels?); "
                             "pass the text label file, one name a line" % path)
        if "\x00" in text:
            raise ModelError("label file %s holds binary data (a model file given as labels?); "
                             "pass the text label file, one name a line" % path)
        lines = [ln.strip() for ln in text.splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise ModelError("label file %s is empty; pass the model's label file, one name a "
                             "line, line 0 the background '???'" % path)
        labels = cls(lines, source=path)
        if num_classes is not None:
            labels.check(num_classes)
        return labels

    def check(self, num_classes):
        """Raise ModelError unless there is exactly one name per score column."""
        if len(self.names) != int(num_classes):
            hint = ""
            if len(self.names) == int(num_classes) - 1:
                hint = " (the background line 0, '???', seems to be missing)"
            raise ModelError(
                "label file %s has %d names but the model has %d classes (background "
                "included)%s; use the label file that came with this model, one name per "
                "score column" % (self.source or "(list)", len(self.names), int(num_classes),
                                  hint))
        return self

    def name(self, class_id):
        return _name_of(self, class_id)

    def __getitem__(self, class_id):
        return self.name(class_id)

    def __len__(self):
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __repr__(self):
        return "LabelMap(%d names from %s)" % (len(self.names), self.source or "a list")
