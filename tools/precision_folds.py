#!/usr/bin/env python3
"""INT8 (and FP16) against FP32 on each sequence fold's held-out frames: the table, JSON and
picture of engines/folds/int8-heldout.*, from the ``jetseg eval`` reports of the folds.

    python3 tools/precision_folds.py runs/int8-heldout -o engines/folds/int8-heldout

reads RUNS/eval-<SEQ>-<variant>/eval.json (``jetseg eval --model fp32-<SEQ>.onnx --split
train,val --sequence <SEQ> --compare <variant>-<SEQ>.onnx``; variants int8, int8alt,
int8minmax, fp16, each where present; int8 is required) and writes OUT.txt, OUT.json and
OUT.png. The FP32 result of every variant's report of a fold must be the same counts (the
same file on the same frames); a mismatch stops the script. Means are over folds (each
fold's mIoU, each class's IoU where the fold has it). Desktop tool (Python 3.8+; the
picture is jetseg eval's OpenCV chart).
"""
import argparse
import glob
import json
import os
import re
import sys

VARIANTS = (("int8", "INT8 (Q/DQ, percentile calibration, 32 of the fold's training frames)"),
            ("int8alt", "INT8 (Q/DQ, percentile calibration, another 24 of the fold's training "
                        "frames: how much the calibration sample moves the figure)"),
            ("int8minmax", "INT8 (Q/DQ, min-max calibration, 100 of the fold's training "
                           "frames: the export's default)"),
            ("fp16", "FP16 (float16 graph, every float16 tensor rounded as on a GPU)"))
GOAL = 1.0          # points of mIoU INT8 may lose (issue 16, deliverable 3)


def pct(v):
    return None if v is None else 100.0 * v


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def load(runs):
    folds = {}
    for path in sorted(glob.glob(os.path.join(runs, "eval-*-*", "eval.json"))):
        m = re.match(r"eval-(.+)-([a-z0-9]+)$", os.path.basename(os.path.dirname(path)))
        if not m or m.group(2) not in dict(VARIANTS):
            continue
        seq, var = m.groups()
        with open(path) as f:
            d = json.load(f)
        if d["dataset"].get("sequences") != [seq] or len(d["results"]) != 2:
            sys.exit("{}: not one sequence ({}) compared with one model".format(path, seq))
        f = folds.setdefault(seq, {"sequence": seq, "frames": d["dataset"]["samples"],
                                   "splits": d["dataset"]["splits"], "reports": {}})
        base, other = d["results"]
        if "fp32" in f:
            if f["fp32_confusion"] != base["confusion"]:
                sys.exit("{}: its FP32 counts differ from the fold's other report".format(path))
        else:
            f["fp32"], f["fp32_confusion"] = summary(base), base["confusion"]
        f[var] = summary(other)
        f["reports"][var] = os.path.relpath(path, runs)
    missing = [s for s, f in folds.items() if "int8" not in f]
    if not folds or missing:
        sys.exit("no eval-<SEQ>-int8/eval.json under {} ({})".format(runs, missing or "none"))
    return [folds[s] for s in sorted(folds)]


def summary(r):
    return {"model": r["model"], "miou": pct(r["miou"]),
            "pixel_accuracy": pct(r["pixel_accuracy"]),
            "per_class": dict((c["name"], pct(c["iou"])) for c in r["per_class"])}


def build(folds, runs):
    names = list(folds[0]["fp32"]["per_class"])
    variants = [v for v, _ in VARIANTS if all(v in f for f in folds)]
    out = {"what": "mIoU (%, mean over the classes present) of each sequence fold's "
                   "last.pth exported as FP32 and as each variant, on the fold's held-out "
                   "sequence (jetseg eval, ONNX Runtime CPU, 480x360 labels, void ignored)",
           "threshold_points": GOAL, "runs": runs, "classes": names,
           "variants": dict((v, t) for v, t in VARIANTS if v in variants), "folds": []}
    for f in folds:
        row = {"sequence": f["sequence"], "frames": f["frames"], "splits": f["splits"],
               "reports": f["reports"], "fp32": f["fp32"]}
        for v in variants:
            row[v] = f[v]
            row[v + "_delta"] = {
                "miou": f[v]["miou"] - f["fp32"]["miou"],
                "per_class": dict((n, None if f[v]["per_class"][n] is None else
                                   f[v]["per_class"][n] - f["fp32"]["per_class"][n])
                                  for n in names)}
            row[v + "_within_goal"] = row[v + "_delta"]["miou"] >= -GOAL
        out["folds"].append(row)
    fs = out["folds"]
    m = {"frames": sum(f["frames"] for f in fs), "fp32": {
        "miou": mean([f["fp32"]["miou"] for f in fs]),
        "per_class": dict((n, mean([f["fp32"]["per_class"][n] for f in fs])) for n in names)}}
    for v in variants:
        m[v] = {"miou": mean([f[v]["miou"] for f in fs]),
                "per_class": dict((n, mean([f[v]["per_class"][n] for f in fs])) for n in names)}
        m[v + "_delta"] = {"miou": mean([f[v + "_delta"]["miou"] for f in fs]),
                           "per_class": dict((n, mean([f[v + "_delta"]["per_class"][n]
                                                       for f in fs])) for n in names),
                           "worst_fold": min(f[v + "_delta"]["miou"] for f in fs)}
        m[v + "_within_goal"] = m[v + "_delta"]["miou"] >= -GOAL
    out["mean"] = m
    return out


def _n(v, signed=False):
    if v is None:
        return "-"
    return "{:+.2f}".format(v) if signed else "{:.2f}".format(v)


def table(rep):
    names, fs, m = rep["classes"], rep["folds"], rep["mean"]
    cols = fs + [dict(m, sequence="mean")]
    w = 12
    lines = ["INT8 against FP32 on each fold's held-out sequence: " + rep["variants"]["int8"],
             "IoU %, mean over the classes present; delta = INT8 - FP32 in points", ""]
    head = "{:<{w}}".format("held out", w=w) + "".join(
        "  {:^22}".format(c["sequence"]) for c in cols)
    sub = "{:<{w}}".format("", w=w) + "".join("  {:>6} {:>6} {:>8}".format("FP32", "INT8", "delta")
                                              for _ in cols)
    lines += [head, sub]
    for n in names:
        lines.append("{:<{w}}".format(n, w=w) + "".join(
            "  {:>6} {:>6} {:>8}".format(_n(c["fp32"]["per_class"][n]),
                                         _n(c["int8"]["per_class"][n]),
                                         _n(c["int8_delta"]["per_class"][n], True))
            for c in cols))
    lines.append("-" * len(sub))
    lines.append("{:<{w}}".format("mIoU", w=w) + "".join(
        "  {:>6} {:>6} {:>8}".format(_n(c["fp32"]["miou"]), _n(c["int8"]["miou"]),
                                     _n(c["int8_delta"]["miou"], True)) for c in cols))
    lines.append("{:<{w}}".format("frames", w=w) + "".join(
        "  {:>22}".format(c["frames"]) for c in cols))
    lines += ["", "mIoU delta to FP32 (points) by variant; goal: INT8 within {:.0f} point "
                  "(delta >= -{:.0f})".format(GOAL, GOAL)]
    lines.append("{:<{w}}".format("variant", w=w) + "".join(
        "  {:>8}".format(c["sequence"]) for c in cols) + "  within goal")
    for v in rep["variants"]:
        ok = all(f[v + "_within_goal"] for f in fs) and m[v + "_within_goal"]
        lines.append("{:<{w}}".format(v, w=w) + "".join(
            "  {:>8}".format(_n(c[v + "_delta"]["miou"], True)) for c in cols) +
            "  {}".format("yes, every fold and the mean" if ok else "NO"))
    lines += [""] + ["{}: {}".format(v, t) for v, t in rep["variants"].items()]
    return "\n".join(s.rstrip() for s in lines) + "\n"


def picture(rep, path):
    """jetseg eval's per-class IoU chart (OpenCV, as folds.png), FP32 and INT8, one a fold."""
    import cv2
    import numpy as np
    from jetseg.eval.evaluate import EvalResult
    from jetseg.eval.report import draw_iou_chart
    panels = []
    for f in rep["folds"]:
        series = []
        for var, what in (("fp32", "FP32"), ("int8", "INT8")):
            with open(os.path.join(rep["runs"], f["reports"]["int8"])) as fh:
                r = json.load(fh)["results"][0 if var == "fp32" else 1]
            res = EvalResult.from_dict(r)
            res.model = "{} held out ({} frames) {}".format(f["sequence"], f["frames"], what)
            series.append(res)
        panels.append(draw_iou_chart(series, bar_width=300))
    h = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)), constant_values=255)
              for p in panels]
    img = np.concatenate(panels, axis=1)
    cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="folder holding eval-<SEQ>-<variant>/eval.json")
    p.add_argument("-o", "--out", required=True, help="output path without extension")
    a = p.parse_args(argv)
    rep = build(load(a.runs), a.runs)
    with open(a.out + ".json", "w") as f:
        json.dump(rep, f, indent=1)
        f.write("\n")
    text = table(rep)
    with open(a.out + ".txt", "w") as f:
        f.write(text)
    picture(rep, a.out + ".png")
    sys.stdout.write(text)
    print("wrote {0}.txt, {0}.json, {0}.png".format(a.out))


if __name__ == "__main__":
    main()
