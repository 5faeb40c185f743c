#!/usr/bin/env python3
"""`jetseg bench` before and after a change: the same models, inputs and backends, run
several times in turns (before, after, after, before, ...) so a load change on a shared
machine hits both alike; prints each row's median frames a second over the runs with their
spread (min..max of the runs' medians) and the pipeline's ratio to model only.

    python3 tools/bench_compare.py                      # before = edac1fd^1, after = this tree
    python3 tools/bench_compare.py --runs 5 --before v0.1 --frames 30 --repeats 5

"before" is a git worktree of ``--before`` made under runs/ (kept for the next call); "after"
is the working tree this script is in. Models: engines/camvid.onnx and an FCN-ResNet18 with
random weights at the clip's size (runs/fcn-resnet18.480x360.onnx, exported on the first call:
needs the export extra, i.e. torch). A checkout without a backend (OpenVINO before issue 17)
shows "n/a". Every bench output is kept in runs/bench-compare-<time>/ for quoting.
Desktop tool (Python 3.8+); the figures are medians, never asserted.
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("model only", "full pipeline", "pipeline + H.264 file", "file in, file out")
ROW = re.compile(r"^  ({})\s+([\d.]+)\s+[\d.]+\.\.[\d.]+\s".format(
    "|".join(re.escape(r) for r in ROWS)), re.M)
FCN = os.path.join("runs", "fcn-resnet18.480x360.onnx")


def sh(cmd, cwd, timeout=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e)


def jetseg(checkout, *args, timeout=None):
    """``python3 -m jetseg.cli ARGS`` with ``checkout`` first on the path."""
    return sh([sys.executable, "-m", "jetseg.cli"] + [str(a) for a in args], checkout,
              timeout=timeout, env={"PYTHONPATH": checkout})


def worktree(rev):
    sha = sh(["git", "rev-parse", "--short", rev], ROOT).stdout.strip()
    if not sha:
        sys.exit("bench_compare: git does not know {!r}".format(rev))
    path = os.path.join(ROOT, "runs", "bench-before-" + sha)
    if not os.path.isdir(path):
        r = sh(["git", "worktree", "add", "--detach", path, sha], ROOT)
        if r.returncode:
            sys.exit("bench_compare: git worktree add failed: " + r.stderr.strip())
    return path, sha


def ensure_fcn():
    path = os.path.join(ROOT, FCN)
    if not os.path.exists(path):
        print("exporting {} (FCN-ResNet18, random weights, 480x360)...".format(FCN), flush=True)
        r = jetseg(ROOT, "export", "--arch", "fcn-resnet18", "--num-classes", "11",
                   "--input-size", "480x360", "-o", path)
        if r.returncode:
            sys.exit("bench_compare: the FCN-ResNet18 export failed (needs pip install -e "
                     "'.[export]'; or give --models):\n" + r.stderr[-2000:])
    return FCN


def backends_of(checkout):
    """The backends a checkout's ``jetseg bench --backend`` takes."""
    text = " ".join(jetseg(checkout, "bench", "--help").stdout.split())
    m = re.search(r"--backend \{([a-z,]+)\}", text)
    return set(m.group(1).split(",")) if m else {"onnxruntime"}


def load():
    return os.getloadavg()[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="edac1fd^1",
                    help="git revision measured as before (default: %(default)s, main before "
                         "issue 17's merge)")
    ap.add_argument("--runs", type=int, default=3,
                    help="jetseg bench runs per checkout, model and backend (default: "
                         "%(default)s)")
    ap.add_argument("--frames", type=int, default=30,
                    help="bench --frames (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="bench --repeats (default: %(default)s)")
    ap.add_argument("--models", nargs="+", help="model files, relative to the repository "
                    "(default: engines/camvid.onnx and {})".format(FCN))
    ap.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"],
                    help="default: %(default)s")
    ap.add_argument("--input", default="samples/camvid-demo.mp4",
                    help="bench input (default: %(default)s)")
    args = ap.parse_args(argv)
    models = args.models or ["engines/camvid.onnx", ensure_fcn()]
    before, sha = worktree(args.before)
    checkouts = [("before " + sha, before), ("after", ROOT)]
    have = dict((name, backends_of(path)) for name, path in checkouts)
    out_dir = os.path.join(ROOT, "runs", "bench-compare-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir)
    fig = {}            # (model, backend, checkout, row) -> [fps median of each run]
    loads = []
    t0 = time.time()
    for run in range(args.runs):
        order = checkouts if run % 2 == 0 else checkouts[::-1]
        for model in models:
            path = os.path.abspath(os.path.join(ROOT, model))
            for backend in args.backends:
                for name, checkout in order:
                    if backend not in have[name]:
                        continue
                    l0 = load()
                    r = jetseg(checkout, "bench", "--model", path,
                               os.path.join(ROOT, args.input), "--backend", backend,
                               "--frames", args.frames, "--repeats", args.repeats,
                               "--soak", 0, timeout=3600)
                    loads.append((l0, load()))
                    tag = "{}-{}-{}-run{}".format(os.path.basename(model), backend,
                                                  name.split()[0], run + 1)
                    with open(os.path.join(out_dir, tag + ".txt"), "w") as f:
                        f.write(r.stdout + r.stderr)
                    if r.returncode:
                        print("{}: jetseg bench failed (exit {}); see {}".format(
                            tag, r.returncode, out_dir), flush=True)
                        continue
                    for m in ROW.finditer(r.stdout):
                        fig.setdefault((model, backend, name, m.group(1)), []).append(
                            float(m.group(2)))
                    print("run {}/{}: {} {} {} done ({:.0f} s so far, load {:.1f})".format(
                        run + 1, args.runs, os.path.basename(model), backend, name,
                        time.time() - t0, loads[-1][1]), flush=True)
    report(fig, models, args, checkouts, loads, out_dir, time.time() - t0)


def _cell(vals):
    if not vals:
        return "n/a"
    return "{:.1f} ({:.1f}..{:.1f})".format(float(np.median(vals)), min(vals), max(vals))


def report(fig, models, args, checkouts, loads, out_dir, took):
    names = [n for n, _ in checkouts]
    lines = ["", "jetseg bench, before ({}) and after: fps, median of {} runs (min..max of the "
             "runs' medians), each run {} repeats of {} frames; ratio = row / model only, "
             "median of the runs".format(names[0].split()[1], args.runs, args.repeats,
                                         args.frames)]
    head = "  {:<22} {:<12} {:<22} {:>22} {:>22} {:>8} {:>15}"
    lines.append(head.format("model", "backend", "row", names[0], names[1], "after/",
                             "ratio before"))
    lines.append(head.format("", "", "", "", "", "before", "-> after").rstrip())
    for model in models:
        for backend in args.backends:
            for row in ROWS:
                cells, ratios = [], []
                for name in names:
                    vals = fig.get((model, backend, name, row), [])
                    base = fig.get((model, backend, name, "model only"), [])
                    cells.append(vals)
                    ratios.append("{:.2f}x".format(float(np.median(
                        [v / b for v, b in zip(vals, base)]))) if vals and base and
                        row != "model only" else "-")
                if not any(cells):
                    continue
                gain = "{:.2f}x".format(float(np.median(cells[1]) / np.median(cells[0]))) \
                    if all(cells) else "-"
                lines.append(head.format(os.path.basename(model), backend, row,
                                         _cell(cells[0]), _cell(cells[1]), gain,
                                         "" if row == "model only" else
                                         "{} -> {}".format(*ratios)).rstrip())
    lines.append("  after's pipeline rows count the time frames flow (bench prints the once-a-file "
                 "open and finish beside them); before's include it")
    start = [a for a, _ in loads]
    lines.append("  {:.0f} s; machine load (1 min average) at each bench's start: median "
                 "{:.1f}, {:.1f}..{:.1f}; outputs in {}".format(
                     took, float(np.median(start)), min(start), max(start),
                     os.path.relpath(out_dir, ROOT)))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out_dir, "summary.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
