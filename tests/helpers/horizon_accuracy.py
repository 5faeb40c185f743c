"""Accuracy and speed of jetseg.autopilot on the synthetic horizon grid (synthetic_horizon.grid).

    python -m tests.helpers.horizon_accuracy [--width 480 --height 360] [--quick]

Grid: roll -60..60 deg (5 deg steps) x pitch -0.4..0.4 (0.1 steps) = 225 scenes per row of
the table, one clutter seed per scene. Errors are against the generator's truth; ms are
medians per call on this machine, with a baseline timed in the same run for comparison
across machines: ``np.bincount(classes.ravel())``, the per-frame class count that
``Segmentation.class_fractions()`` already does.
"""
import argparse
import time

import numpy as np

from jetseg import autopilot as ap
from tests.helpers.synthetic_horizon import CLUTTER, NAMES, grid, make_scene

ROWS = [
    ("clean", (), {}),
    ("trees", ("trees",), {}),
    ("poles", ("poles",), {}),
    ("noise 5%", ("noise",), {}),
    ("occlusion (as ground)", ("occlusion",), {}),
    ("occlusion (ignored)", ("occlusion",), {"ignore_classes": ["Wing"]}),
    ("all four", CLUTTER, {}),
    ("clean, step=1", (), {"step": 1}),
]


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000.0 * float(np.median(ts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--quick", action="store_true", help="every 3rd grid point only")
    a = p.parse_args(argv)
    W, H = a.width, a.height
    cases = grid()[::3] if a.quick else grid()
    cl = make_scene(10, 0.1, W, H).classes
    timed(lambda: ap.estimate_horizon(cl, [0]), 20)          # warm up
    base_ms = timed(lambda: np.bincount(cl.ravel()), 200)

    print("jetseg.autopilot.estimate_horizon on {} synthetic {}x{} scenes "
          "(roll -60..60, pitch -0.4..0.4)".format(len(cases), W, H))
    head = "| {:<22} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |".format(
        "clutter", "roll max", "roll med", "pitch max", "pitch med", "conf med", "ms/call")
    print(head)
    print("|" + "|".join("-" * (len(c) + 0) for c in head.split("|")[1:-1]) + "|")
    for label, clutter, kw in ROWS:
        er, ep, cf, ts = [], [], [], []
        for i, (roll, pitch) in enumerate(cases):
            s = make_scene(roll, pitch, W, H, clutter=clutter, seed=i)
            t = time.perf_counter()
            h = ap.estimate_horizon(s.classes, ["Sky"], names=NAMES, **kw)
            ts.append(time.perf_counter() - t)
            er.append(abs(h.roll_deg - roll))
            ep.append(abs(h.pitch - pitch))
            cf.append(h.confidence)
        print("| {:<22} | {:>9.3f} | {:>9.3f} | {:>9.4f} | {:>9.4f} | {:>9.2f} | {:>9.2f} |".format(
            label, max(er), np.median(er), max(ep), np.median(ep), np.median(cf),
            1000 * np.median(ts)))
    print("(roll errors in degrees; pitch errors in image heights; target on clean masks: "
          "roll < 1, pitch < 0.01)")

    s = make_scene(15, 0.1, W, H, clutter=CLUTTER, seed=1)
    hf = ap.HorizonFilter()
    h = ap.estimate_horizon(s.classes, ["Sky"], names=NAMES)
    gates = [ap.pull_up(["Sky"]), ap.Gate("land_here", ["Ground"], above=0.6)]
    fr = ap.class_fractions(s.classes, NAMES)
    print()
    print("ms per call at {}x{} (median); baseline np.bincount(classes.ravel()) = "
          "{:.3f} ms".format(W, H, base_ms))
    for name, fn, reps in [
            ("estimate_horizon (all clutter)",
             lambda: ap.estimate_horizon(s.classes, ["Sky"], names=NAMES), 100),
            ("free_space (9 sectors, lower half)",
             lambda: ap.free_space(s.classes, ["Ground"], names=NAMES), 200),
            ("class_fractions + check_gates (2)",
             lambda: ap.check_gates(ap.class_fractions(s.classes, NAMES), gates), 200),
            ("check_gates on a fractions dict", lambda: ap.check_gates(fr, gates), 2000),
            ("HorizonFilter.update", lambda: hf.update(h), 2000)]:
        ms = timed(fn, reps)
        print("  {:<36} {:8.3f} ms  ({:5.1f}x baseline)".format(name, ms, ms / base_ms))


if __name__ == "__main__":
    main()
