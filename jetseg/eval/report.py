"""What ``jetseg eval`` shows and writes for one or more results of ``evaluate``.

    print(format_table(results))                # per-class IoU, deltas to the first model
    write_report("eval/", results, dataset)     # eval.json, iou.png, confusion.png (+ _2 ...)

``results`` are ``jetseg.eval.evaluate.EvalResult``s (names, model, counts and the metrics of
``jetseg.eval.metrics``). The pictures are drawn with OpenCV only: this runs on a Jetson.
"""
import json
import math
import os
import time

import numpy as np

from jetseg.errors import JetsegError, need_cv2
from jetseg.eval.metrics import nan_to_none


# ---- tables and eval.json ----------------------------------------------------------------
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
            "miou_delta": nan_to_none(r.miou - base.miou),
            "pixel_accuracy_delta": nan_to_none(r.pixel_accuracy - base.pixel_accuracy),
            "mean_accuracy_delta": nan_to_none(r.mean_accuracy - base.mean_accuracy),
            "per_class_iou_delta": dict((n, nan_to_none(float(b[i] - a[i])))
                                        for i, n in enumerate(base.names)),
        })
    return out


def report_dict(results, dataset=None):
    d = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "dataset": dataset.info() if dataset is not None else None,
         "miou": nan_to_none(results[0].miou),
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
