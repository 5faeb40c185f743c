"""Run a model over a labelled dataset and count: ``evaluate`` -> ``EvalResult``.

    from jetseg import Segmenter
    from jetseg.eval.datasets import open_dataset
    from jetseg.eval.evaluate import evaluate
    from jetseg.eval.report import format_table, write_report
    res = evaluate(Segmenter("camvid.onnx"), open_dataset(root, "camvid", "val"))
    res.miou, res.per_class_iou(), res.pixel_accuracy
    write_report("eval/", [res], dataset)          # eval.json, iou.png, confusion.png

The metrics and their definitions (mIoU: the mean over the classes present in the ground
truth) are ``jetseg.eval.metrics``'. A model whose classes differ from the dataset's is
matched by class name; predictions of a model class the dataset lacks count as errors (the
``unmatched`` column).
"""
import os
import time

import numpy as np

from jetseg.errors import JetsegError, log
from jetseg.eval import metrics
from jetseg.progress import Progress


class EvalResult(object):
    """Accumulated counts of one model on one dataset, and the metrics derived from them."""

    def __init__(self, names, model=None, backend=None):
        self.names = list(names)
        c = len(self.names)
        self.counts = np.zeros((c, c + 1), np.int64)     # last column: unmatched predictions
        self.model = model
        self.backend = backend
        self.images = 0
        self.skipped = []
        self.seconds = 0.0
        self.latencies = []

    # ---- accumulation ------------------------------------------------------------------
    def add(self, gt, pred, ignore_index=None):
        self.counts += metrics.confusion_matrix(gt, pred, len(self.names), ignore_index,
                                                extra_column=True)
        self.images += 1

    @classmethod
    def from_confusion(cls, names, confusion, unmatched=None):
        r = cls(names)
        cm = np.asarray(confusion, np.int64)
        r.counts[:, :cm.shape[1]] = cm
        if unmatched is not None:
            r.counts[:, -1] = np.asarray(unmatched, np.int64)
        return r

    # ---- metrics (jetseg.eval.metrics on the counts) ---------------------------------
    @property
    def confusion(self):
        """C x C counts (rows ground truth, columns prediction)."""
        return self.counts[:, :-1]

    @property
    def unmatched(self):
        """Per ground-truth class: pixels predicted as a model class the dataset lacks."""
        return self.counts[:, -1]

    def per_class_iou(self):
        return metrics.per_class_iou(self.counts)

    def per_class_accuracy(self):
        return metrics.per_class_accuracy(self.counts)

    @property
    def present(self):
        """Class ids with ground-truth pixels (the classes mIoU averages over)."""
        return metrics.present_classes(self.counts)

    @property
    def miou(self):
        return metrics.miou(self.counts)

    @property
    def mean_accuracy(self):
        return metrics.mean_accuracy(self.counts)

    @property
    def pixel_accuracy(self):
        return metrics.pixel_accuracy(self.counts)

    @property
    def fw_iou(self):
        return metrics.fw_iou(self.counts)

    @property
    def fps(self):
        return self.images / self.seconds if self.seconds else float("nan")

    def to_dict(self):
        none = metrics.nan_to_none
        iou, acc = self.per_class_iou(), self.per_class_accuracy()
        gt = self.counts.sum(axis=1)
        pred = self.confusion.sum(axis=0)
        lat = sorted(self.latencies)
        d = {
            "model": self.model, "backend": self.backend, "images": self.images,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "miou": none(self.miou), "pixel_accuracy": none(self.pixel_accuracy),
            "mean_accuracy": none(self.mean_accuracy), "fw_iou": none(self.fw_iou),
            "classes_scored": [self.names[i] for i in self.present],
            "miou_definition": metrics.MIOU_DEFINITION,
            "per_class": [{"id": i, "name": n, "iou": none(float(iou[i])),
                           "accuracy": none(float(acc[i])), "gt_pixels": int(gt[i]),
                           "pred_pixels": int(pred[i])} for i, n in enumerate(self.names)],
            "confusion": self.confusion.tolist(),
            "seconds": round(self.seconds, 3),
            "fps": none(round(self.fps, 3) if self.seconds else None),
            "median_latency_ms": round(lat[len(lat) // 2], 3) if lat else None,
        }
        if self.unmatched.any():
            d["unmatched"] = self.unmatched.tolist()
        return d

    @classmethod
    def from_dict(cls, d):
        names = [c["name"] for c in d["per_class"]]
        r = cls.from_confusion(names, d["confusion"], d.get("unmatched"))
        r.model, r.backend, r.images = d.get("model"), d.get("backend"), d.get("images", 0)
        r.seconds = d.get("seconds") or 0.0
        return r

    def __repr__(self):
        return "EvalResult({}, {} images, mIoU {:.4f}, pixel acc {:.4f})".format(
            os.path.basename(str(self.model)), self.images, self.miou, self.pixel_accuracy)


# ---- running a model over a dataset ------------------------------------------------------
def class_mapping(model_names, dataset_names):
    """LUT: model class id -> dataset class id (len(dataset_names) = no such class)."""
    n_model, n_data = len(model_names), len(dataset_names)
    lut = np.full(max(256, n_model), n_data, np.int64)
    if n_model == n_data:
        lut[:n_model] = np.arange(n_model)
        differ = [(m, d) for m, d in zip(model_names, dataset_names)
                  if m.lower() != d.lower() and not m.startswith("class #")]
        if differ:
            log.warning("model and dataset class names differ (%s); classes are matched by "
                        "id", ", ".join("{}={}".format(m, d) for m, d in differ[:4]))
        return lut
    index = dict((d.lower(), i) for i, d in enumerate(dataset_names))
    matched = 0
    for i, m in enumerate(model_names):
        j = index.get(m.lower())
        if j is not None:
            lut[i] = j
            matched += 1
    if not matched:
        raise JetsegError(
            "the model has {} classes ({}...) and the dataset {} ({}...), with no names in "
            "common".format(n_model, ", ".join(model_names[:3]), n_data,
                            ", ".join(dataset_names[:3])),
            fix="evaluate on the dataset the model was trained for, or pass --labels with the "
                "model's class names")
    missing = [m for i, m in enumerate(model_names) if lut[i] == n_data]
    if missing:
        log.warning("model classes not in the dataset count as errors: %s", ", ".join(missing))
    return lut


def evaluate(segmenter, dataset, progress=True, limit=None, skip_bad=False, label=None,
             stream=None):
    """Run ``segmenter.process(image).classes`` on every sample and count the confusion.

    skip_bad   leave out samples whose files are bad (JetsegError while reading), counted
               in ``result.skipped``; otherwise the first one stops the run
    limit      only the first N samples
    """
    names = list(dataset.names)
    lut = class_mapping(list(segmenter.classes), names)
    result = EvalResult(names, model=getattr(segmenter, "path", None),
                        backend=getattr(getattr(segmenter, "backend", None), "name", None))
    n = len(dataset) if limit is None else min(len(dataset), max(0, int(limit)))
    if n == 0:
        raise JetsegError("the dataset has no samples to evaluate", path=dataset.root,
                          fix="check --dataset, --split and --limit")
    bar = Progress(n, label or "eval " + os.path.basename(str(result.model)), stream,
                   enabled=progress, every=30.0)
    start = time.perf_counter()
    try:
        for i in range(n):
            try:
                image, gt = dataset[i]
            except JetsegError as e:
                if not skip_bad:
                    raise
                result.skipped.append((dataset.paths(i)[0], str(e)))
                bar.set(i + 1)
                continue
            res = segmenter.process(image)
            if res.latency_ms is not None:
                result.latencies.append(res.latency_ms)
            pred = lut[res.classes]
            result.add(gt, pred, dataset.ignore_index)
            bar.set(i + 1)
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start
    if result.skipped:
        log.warning("skipped %d bad sample(s) of %d (first: %s)", len(result.skipped), n,
                    result.skipped[0][1])
    if result.images == 0:
        raise JetsegError("every sample was bad; nothing was evaluated", path=dataset.root,
                          fix="check the dataset (run without --skip-bad to see the first "
                              "error)")
    return result
