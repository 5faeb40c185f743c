"""Accuracy of a model on a labelled dataset: confusion matrix, IoU, mIoU, accuracies.

    from jetseg import Segmenter
    from jetseg.eval.datasets import open_dataset
    from jetseg.eval.evaluate import evaluate, write_report
    res = evaluate(Segmenter("camvid.onnx"), open_dataset(root, "camvid", "val"))
    res.miou, res.per_class_iou(), res.pixel_accuracy
    write_report("eval/", [res], dataset)          # eval.json, iou.png, confusion.png

Definitions (rows of the confusion matrix = ground truth, columns = prediction; pixels whose
label is the dataset's ``ignore_index`` are left out before anything is counted):

    IoU(c)              TP / (TP + FP + FN); undefined (null) when class c is neither in the
                        ground truth nor predicted
    mIoU                mean IoU over the classes that occur in the ground truth of the
                        evaluated images. With every class present (CamVid val: all 11,
                        Cityscapes val: all 19) this is the usual mean over all classes; a
                        class absent from the ground truth cannot be scored fairly, so it
                        is left out rather than counted as 0 or 1 (its false positives still
                        lower the IoU of the classes they were taken from). ``classes_scored``
                        in the report lists which classes entered the mean.
    pixel accuracy      correctly classified pixels / all scored pixels
    mean accuracy       mean over the same classes of TP / ground-truth pixels (class recall)
    fw IoU              IoU weighted by each class's share of ground-truth pixels

A model whose classes differ from the dataset's is matched by class name; predictions of a
model class the dataset lacks count as errors (the ``unmatched`` column).
"""
import json
import math
import os
import sys
import time

import numpy as np

from jetseg.errors import JetsegError, log, need_cv2


# ---- counting ----------------------------------------------------------------------------
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


def _nan_to_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


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
        self.counts += confusion_matrix(gt, pred, len(self.names), ignore_index,
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

    # ---- metrics -----------------------------------------------------------------------
    @property
    def confusion(self):
        """C x C counts (rows ground truth, columns prediction)."""
        return self.counts[:, :-1]

    @property
    def unmatched(self):
        """Per ground-truth class: pixels predicted as a model class the dataset lacks."""
        return self.counts[:, -1]

    def _parts(self):
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        gt = self.counts.sum(axis=1).astype(np.float64)
        pred = cm.sum(axis=0)
        return tp, gt, pred

    def per_class_iou(self):
        tp, gt, pred = self._parts()
        union = gt + pred - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def per_class_accuracy(self):
        tp, gt, _ = self._parts()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)

    @property
    def present(self):
        """Class ids with ground-truth pixels (the classes mIoU averages over)."""
        return [i for i, n in enumerate(self.counts.sum(axis=1)) if n > 0]

    @property
    def miou(self):
        ids = self.present
        return float(np.mean(self.per_class_iou()[ids])) if ids else float("nan")

    @property
    def mean_accuracy(self):
        ids = self.present
        return float(np.mean(self.per_class_accuracy()[ids])) if ids else float("nan")

    @property
    def pixel_accuracy(self):
        total = self.counts.sum()
        return float(np.trace(self.confusion)) / total if total else float("nan")

    @property
    def fw_iou(self):
        gt = self.counts.sum(axis=1).astype(np.float64)
        if not gt.sum():
            return float("nan")
        iou = np.nan_to_num(self.per_class_iou())
        return float((gt / gt.sum() * iou).sum())

    @property
    def fps(self):
        return self.images / self.seconds if self.seconds else float("nan")

    def to_dict(self):
        iou, acc = self.per_class_iou(), self.per_class_accuracy()
        gt = self.counts.sum(axis=1)
        pred = self.confusion.sum(axis=0)
        lat = sorted(self.latencies)
        d = {
            "model": self.model, "backend": self.backend, "images": self.images,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "miou": _nan_to_none(self.miou), "pixel_accuracy": _nan_to_none(self.pixel_accuracy),
            "mean_accuracy": _nan_to_none(self.mean_accuracy),
            "fw_iou": _nan_to_none(self.fw_iou),
            "classes_scored": [self.names[i] for i in self.present],
            "miou_definition": "mean IoU over classes present in the ground truth",
            "per_class": [{"id": i, "name": n, "iou": _nan_to_none(float(iou[i])),
                           "accuracy": _nan_to_none(float(acc[i])), "gt_pixels": int(gt[i]),
                           "pred_pixels": int(pred[i])} for i, n in enumerate(self.names)],
            "confusion": self.confusion.tolist(),
            "seconds": round(self.seconds, 3), "fps": _nan_to_none(round(self.fps, 3)
                                                                   if self.seconds else None),
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


class Progress(object):
    """``n/total, fps, ETA`` on stderr: one rewritten line on a terminal, else every 10%."""

    def __init__(self, total, label="eval", stream=None, enabled=True):
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.start = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.step = max(1, total // 10)
        self.done = 0
        self.last = 0.0

    def update(self, n):
        self.done = n
        if not self.enabled:
            return
        now = time.perf_counter()
        if n != self.total and (n % self.step if not self.tty else now - self.last < 0.2):
            return
        self.last = now
        elapsed = now - self.start
        fps = n / elapsed if elapsed > 0 else 0.0
        eta = (self.total - n) / fps if fps > 0 else 0.0
        text = "{} {:>{w}}/{} {:6.1f} fps  ETA {}".format(
            self.label, n, self.total, fps, _hms(eta), w=len(str(self.total)))
        if self.tty:
            self.stream.write("\r" + text + ("\n" if n == self.total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty and self.done != self.total:
            self.stream.write("\n")


def _hms(s):
    s = int(round(s))
    return "{}:{:02d}:{:02d}".format(s // 3600, s // 60 % 60, s % 60)


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
                   enabled=progress)
    start = time.perf_counter()
    try:
        for i in range(n):
            try:
                image, gt = dataset[i]
            except JetsegError as e:
                if not skip_bad:
                    raise
                result.skipped.append((dataset.paths(i)[0], str(e)))
                bar.update(i + 1)
                continue
            res = segmenter.process(image)
            if res.latency_ms is not None:
                result.latencies.append(res.latency_ms)
            pred = lut[res.classes]
            result.add(gt, pred, dataset.ignore_index)
            bar.update(i + 1)
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


# ---- reporting ---------------------------------------------------------------------------
def _pct(v):
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else \
        "{:6.2f}".format(100.0 * v)


def format_table(results):
    """Per-class IoU table (percent) for one or more results, with deltas to the first."""
    names = results[0].names
    w = max(10, max(len(n) for n in names))
    cw = max(8, max(len(_short(r.model)) for r in results))
    head = "{:<{w}}".format("class", w=w) + "".join(
        "  {:>{cw}}".format(_short(r.model), cw=cw) for r in results)
    if len(results) > 1:
        head += "  " + "  ".join("{:>7}".format("delta") for _ in results[1:])
    lines = [head]
    ious = [r.per_class_iou() for r in results]

    def row(label, values):
        s = "{:<{w}}".format(label, w=w) + "".join("  {:>{cw}}".format(_pct(v), cw=cw)
                                                   for v in values)
        for v in values[1:]:
            d = None if _bad(v) or _bad(values[0]) else v - values[0]
            s += "  " + ("{:+7.2f}".format(100.0 * d) if d is not None else "      -")
        return s

    for i, n in enumerate(names):
        lines.append(row(n, [float(x[i]) for x in ious]))
    lines.append("-" * len(head))
    lines.append(row("mIoU", [r.miou for r in results]))
    lines.append(row("pixel acc", [r.pixel_accuracy for r in results]))
    lines.append(row("mean acc", [r.mean_accuracy for r in results]))
    lines.append("{:<{w}}".format("images", w=w) + "".join(
        "  {:>{cw}}".format(r.images, cw=cw) for r in results))
    lines.append("{:<{w}}".format("fps", w=w) + "".join(
        "  {:>{cw}.1f}".format(r.fps, cw=cw) for r in results))
    return "\n".join(lines)


def _bad(v):
    return v is None or (isinstance(v, float) and math.isnan(v))


def _short(model):
    name = os.path.basename(str(model)) if model else "model"
    return name if len(name) <= 24 else name[:23] + "~"


def compare_dict(results):
    base = results[0]
    out = []
    for r in results[1:]:
        a, b = base.per_class_iou(), r.per_class_iou()
        out.append({
            "model": r.model, "baseline": base.model,
            "miou_delta": _nan_to_none(r.miou - base.miou),
            "pixel_accuracy_delta": _nan_to_none(r.pixel_accuracy - base.pixel_accuracy),
            "mean_accuracy_delta": _nan_to_none(r.mean_accuracy - base.mean_accuracy),
            "per_class_iou_delta": dict((n, _nan_to_none(float(b[i] - a[i])))
                                        for i, n in enumerate(base.names)),
        })
    return out


def report_dict(results, dataset=None):
    d = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "dataset": dataset.info() if dataset is not None else None,
         "miou": _nan_to_none(results[0].miou),
         "results": [r.to_dict() for r in results]}
    if len(results) > 1:
        d["compare"] = compare_dict(results)
    return d


def write_report(out_dir, results, dataset=None, colors=None):
    """eval.json, iou.png (per-class IoU bars) and confusion.png (+ confusion_2.png, ...)."""
    from jetseg.files import write_atomic, write_image
    out_dir = str(out_dir)
    if not os.path.isdir(out_dir):
        try:
            os.makedirs(out_dir)
        except OSError as e:
            raise JetsegError("cannot create output folder: {}".format(e.strerror), path=out_dir,
                              fix="choose an --out folder you can write")
    paths = {"json": os.path.join(out_dir, "eval.json"),
             "iou": os.path.join(out_dir, "iou.png"), "confusion": []}
    write_atomic(paths["json"], (json.dumps(report_dict(results, dataset), indent=1,
                                            sort_keys=False) + "\n").encode("utf-8"))
    colors = colors or (dataset.colors if dataset is not None else None)
    write_image(paths["iou"], draw_iou_chart(results, colors))
    for k, r in enumerate(results):
        p = os.path.join(out_dir, "confusion.png" if k == 0 else "confusion_{}.png".format(k + 1))
        write_image(p, draw_confusion(r))
        paths["confusion"].append(p)
    return paths


# ---- pictures (OpenCV only: this runs on a Jetson) ---------------------------------------
FONT_SCALE = 0.45
SERIES = [(180, 120, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214)]     # BGR


def _text(img, s, org, scale=FONT_SCALE, color=(0, 0, 0), thick=1):
    cv2 = need_cv2("drawing charts")
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def _text_size(s, scale=FONT_SCALE, thick=1):
    cv2 = need_cv2("drawing charts")
    (w, h), base = cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    return w, h, base


def draw_iou_chart(results, colors=None, bar_width=420):
    """Horizontal bars of per-class IoU (one bar per model), mIoU in the title. BGR uint8."""
    cv2 = need_cv2("drawing charts")
    names = results[0].names
    k = len(results)
    bar_h = 14 if k == 1 else max(6, 22 // k)
    row_h = bar_h * k + 8
    label_w = max(_text_size(n)[0] for n in names) + 40
    top, left = 56 + 18 * k, label_w
    width = left + bar_width + 70
    height = top + row_h * len(names) + 30
    img = np.full((height, width, 3), 255, np.uint8)
    _text(img, "per-class IoU (%)", (10, 22), 0.6, thick=1)
    for j, r in enumerate(results):
        y = 40 + 18 * j
        cv2.rectangle(img, (10, y - 10), (22, y + 2), SERIES[j % len(SERIES)], -1)
        _text(img, "{}: mIoU {:.2f}%  pixel acc {:.2f}%".format(
            os.path.basename(str(r.model)) if r.model else "model", 100 * r.miou,
            100 * r.pixel_accuracy),
            (28, y))
    for g in range(0, 101, 20):                                          # grid
        x = left + int(bar_width * g / 100.0)
        cv2.line(img, (x, top - 4), (x, top + row_h * len(names)), (225, 225, 225), 1)
        _text(img, str(g), (x - 8, height - 10), 0.4, (90, 90, 90))
    ious = [r.per_class_iou() for r in results]
    for i, n in enumerate(names):
        y0 = top + i * row_h + 4
        if colors is not None and i < len(colors):
            r_, g_, b_ = [int(v) for v in colors[i][:3]]
            cv2.rectangle(img, (8, y0 + 1), (22, y0 + row_h - 9), (b_, g_, r_), -1)
            cv2.rectangle(img, (8, y0 + 1), (22, y0 + row_h - 9), (0, 0, 0), 1)
        _text(img, n, (30, y0 + (row_h - 8) // 2 + 5))
        for j in range(k):
            v = float(ious[j][i])
            yb = y0 + j * bar_h
            if math.isnan(v):
                _text(img, "n/a", (left + 4, yb + bar_h - 3), 0.38, (120, 120, 120))
                continue
            x1 = left + int(round(bar_width * v))
            cv2.rectangle(img, (left, yb), (max(left + 1, x1), yb + bar_h - 2),
                          SERIES[j % len(SERIES)], -1)
            _text(img, "{:.1f}".format(100 * v), (x1 + 4, yb + bar_h - 3), 0.38)
    cv2.line(img, (left, top - 4), (left, top + row_h * len(names)), (0, 0, 0), 1)
    return img


def draw_confusion(result, max_size=900):
    """Row-normalised confusion matrix (ground truth rows), class names on both axes and
    percentages in the cells when they fit. BGR uint8."""
    cv2 = need_cv2("drawing charts")
    names = result.names
    c = len(names)
    cell = int(max(8, min(44, max_size // max(1, c))))
    label_w = max(_text_size(n)[0] for n in names) + 12
    top, left = label_w + 40, label_w + 16
    title = "{} - mIoU {:.2f}%".format(os.path.basename(str(result.model)) if result.model
                                       else "confusion", 100 * result.miou)
    footer = "rows: ground truth, columns: prediction (% of row)"
    size_w = max(left + cell * c + 10, _text_size(title, 0.5)[0] + 16,
                 _text_size(footer, 0.42)[0] + 16)
    size_h = top + cell * c + 34
    img = np.full((size_h, size_w, 3), 255, np.uint8)
    counts = result.counts.astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.where(rows > 0, counts[:, :c] / np.maximum(rows, 1), 0.0)
    show = cell >= 26
    for i in range(c):
        for j in range(c):
            v = norm[i, j]
            # white -> dark blue
            colour = (255 - int(115 * v), 255 - int(200 * v), 255 - int(235 * v))
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), colour, -1)
            if show and rows[i, 0] > 0:
                s = "{:.0f}".format(100 * v) if v >= 0.005 else ""
                tw, th, _ = _text_size(s, 0.36)
                _text(img, s, (x + (cell - tw) // 2, y + (cell + th) // 2), 0.36,
                      (255, 255, 255) if v > 0.5 else (0, 0, 0))
    cv2.rectangle(img, (left - 1, top - 1), (left + cell * c, top + cell * c), (0, 0, 0), 1)
    scale = min(FONT_SCALE, 0.3 + cell / 100.0)
    for i, n in enumerate(names):                       # row labels (ground truth)
        tw, th, _ = _text_size(n, scale)
        _text(img, n, (left - tw - 6, top + i * cell + (cell + th) // 2), scale)
    # column labels: draw horizontally, rotate 90 degrees
    strip = np.full((cell * c, label_w + 8, 3), 255, np.uint8)
    for j, n in enumerate(names):
        tw, th, _ = _text_size(n, scale)
        _text(strip, n, (4, j * cell + (cell + th) // 2), scale)
    rot = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    h = min(rot.shape[0], top - 6)
    img[top - 6 - h:top - 6, left:left + rot.shape[1]] = rot[rot.shape[0] - h:]
    _text(img, footer, (8, size_h - 12), 0.42, (60, 60, 60))
    _text(img, title, (8, 18), 0.5)
    return img
