"""Segmentation metrics from a confusion matrix: the one place jetseg computes them.

``jetseg eval``, ``jetseg train`` (best.pth and ``val_miou``), the export's parity check
(``miou``) and the demo model all count and score with this module, so their figures mean
the same thing.

Counts are a C x C int64 matrix, rows = ground truth, columns = prediction, optionally with
one extra last column (C x (C+1)) for predictions of a class the dataset lacks (they are
errors: false negatives of the row's class, false positives of no class). Ground-truth
pixels equal to ``ignore_index`` or outside 0..C-1 are left out before anything is counted.

    IoU(c)           TP / (TP + FP + FN); NaN when class c is neither in the ground truth
                     nor predicted
    mIoU             MIOU_DEFINITION: the mean IoU over the classes that occur in the
                     ground truth of the evaluated split. With every class present (CamVid
                     val: all 11, Cityscapes val: all 19) this is the usual mean over all
                     classes; a class absent from the ground truth cannot be scored fairly,
                     so it is left out rather than counted as 0 or 1 (its false positives
                     still lower the IoU of the classes they were taken from)
    pixel accuracy   correctly classified pixels / all scored pixels
    mean accuracy    mean over the same classes of TP / ground-truth pixels (class recall)
    fw IoU           IoU weighted by each class's share of ground-truth pixels
"""
import math

import numpy as np

from jetseg.errors import JetsegError

MIOU_DEFINITION = "mean IoU over classes present in the ground truth"


def confusion_matrix(gt, pred, num_classes, ignore_index=None, extra_column=False):
    """C x C int64 counts (rows: ground truth, columns: prediction) of one or more maps.

    Ground-truth pixels equal to ``ignore_index`` (or outside 0..C-1) are left out.
    Predictions outside 0..C-1 are an error, or land in an extra last column
    (C x (C+1)) with ``extra_column=True``.
    """
    c = int(num_classes)
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise JetsegError("ground truth has {} pixels, prediction {}".format(gt.size, pred.size),
                          fix="compare maps of the same size")
    keep = (gt >= 0) & (gt < c)
    if ignore_index is not None:
        keep &= gt != ignore_index
    g = gt[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    bad = (p < 0) | (p >= c)
    cols = c + 1 if extra_column else c
    if bad.any():
        if not extra_column:
            raise JetsegError("prediction holds class id {} but there are only {} classes"
                              .format(int(p[bad][0]), c), fix="map the model's classes to "
                              "the dataset's (evaluate() does this by name)")
        p[bad] = c
    return np.bincount(g * cols + p, minlength=c * cols).reshape(c, cols)


def _parts(counts):
    """(TP, ground-truth pixels, predicted pixels) per class, as float64."""
    counts = np.asarray(counts)
    c = counts.shape[0]
    cm = counts[:, :c].astype(np.float64)
    return np.diag(cm), counts.sum(axis=1).astype(np.float64), cm.sum(axis=0)


def present_classes(counts):
    """Class ids with ground-truth pixels: the classes mIoU averages over."""
    return [i for i, n in enumerate(np.asarray(counts).sum(axis=1)) if n > 0]


def per_class_iou(counts):
    tp, gt, pred = _parts(counts)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def per_class_accuracy(counts):
    tp, gt, _ = _parts(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)


def miou(counts):
    """MIOU_DEFINITION; NaN when the ground truth holds no scored pixel."""
    ids = present_classes(counts)
    return float(np.mean(per_class_iou(counts)[ids])) if ids else float("nan")


def mean_accuracy(counts):
    ids = present_classes(counts)
    return float(np.mean(per_class_accuracy(counts)[ids])) if ids else float("nan")


def pixel_accuracy(counts):
    tp, gt, _ = _parts(counts)
    total = gt.sum()
    return float(tp.sum() / total) if total else float("nan")


def fw_iou(counts):
    _, gt, _ = _parts(counts)
    if not gt.sum():
        return float("nan")
    return float((gt / gt.sum() * np.nan_to_num(per_class_iou(counts))).sum())


class Confusion(object):
    """Counts accumulated over maps: ``add(gt, pred)`` then ``miou()``, ``per_class_iou()``..."""

    def __init__(self, num_classes, ignore_index=None, extra_column=False):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.extra_column = extra_column
        cols = self.num_classes + (1 if extra_column else 0)
        self.counts = np.zeros((self.num_classes, cols), np.int64)

    def add(self, gt, pred):
        self.counts += confusion_matrix(gt, pred, self.num_classes, self.ignore_index,
                                        self.extra_column)
        return self

    def per_class_iou(self):
        return per_class_iou(self.counts)

    def miou(self):
        return miou(self.counts)

    def pixel_accuracy(self):
        return pixel_accuracy(self.counts)


def nan_to_none(v):
    """A metric as a JSON value: NaN (undefined) becomes None."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def miou_facts(value, key="miou", split=None):
    """Model metadata for an mIoU figure: the figure (4 decimals) and, next to it, what it
    means (``miou_definition``) and, when known, what it was measured on (``miou_split``)."""
    facts = {key: round(float(value), 4), "miou_definition": MIOU_DEFINITION}
    if split:
        facts["miou_split"] = str(split)
    return facts
