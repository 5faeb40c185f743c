"""What --emit costs the camera loop: paired runs with and without it, figures printed.

    python3 -m tests.helpers.emit_cost                       # camvid.onnx on the demo clip
    python3 -m tests.helpers.emit_cost --emit udp://127.0.0.1:9 --camera-height 1.5
    PYTHONPATH=/path/to/other/checkout python3 tests/helpers/emit_cost.py   # older code

Frames are decoded once and held in memory (jetseg bench's MemorySource), every run goes
through the real Pipeline with the render work jetseg-camera does (overlay, class counts),
and a run with the EmitSink alternates with one without it (which goes first alternates
too), so drift on a shared machine hits both. Prints each pair, the median fps ratio, the
median ratio of process CPU per frame (what a CPU-bound machine loses) and the render
stage's p50 (what the camera loop itself waits for); nothing is asserted (timing belongs to
benchmarks, not tests).
"""
import argparse
import inspect
import os
import statistics
import sys
import time

if __package__ in (None, ""):             # run as a file: the checkout on PYTHONPATH wins
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run(seg, frames, total, emit_factory):
    from jetseg.cli.bench import MemorySource, RenderSink
    from jetseg.io.pipeline import Pipeline
    pipe = Pipeline(MemorySource(frames, total), seg, sinks=[RenderSink("overlay")])
    if emit_factory:
        pipe.sinks.append(emit_factory(pipe.stats))
    t0, c0 = time.perf_counter(), time.process_time()
    stats = pipe.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return stats.frames / wall, 1000.0 * cpu / stats.frames, stats.stages["render"].percentile(50)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="engines/camvid.onnx")
    p.add_argument("--clip", default="samples/camvid-demo.mp4")
    p.add_argument("--frames", type=int, default=60, help="frames per run")
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--emit", action="append", help="URI (default udp://127.0.0.1:9: nobody)")
    p.add_argument("--camera-height", type=float, help="also compute obstacle distances")
    p.add_argument("--live", action="store_true",
                   help="hand results over as for a live camera (the newest wins) instead of "
                        "as for a file (every frame gets its record)")
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads (default 1: no idle thread pool spinning into the "
                        "CPU figures)")
    args = p.parse_args()
    import jetseg
    from jetseg import Segmenter
    from jetseg.autopilot.emit import EmitSink, Signals
    from jetseg.cli.bench import load_frames
    uris = args.emit or ["udp://127.0.0.1:9"]
    seg = Segmenter(args.model, threads=args.threads)
    frames = load_frames(args.clip, args.frames)
    if isinstance(frames, tuple):                     # newer bench: (frames, fps)
        frames = frames[0]
    kw = {}
    if "live" in inspect.signature(EmitSink.__init__).parameters:
        kw["live"] = args.live                        # a file: every frame gets its record

    def factory(stats):
        extra = {}
        if args.camera_height:
            from jetseg.autopilot.obstacles import CameraGeometry, ObstacleDistances
            cam = CameraGeometry(height_m=args.camera_height, hfov_deg=62.2)
            sig = Signals(seg.classes, camera=cam)
            sig.obstacles = ObstacleDistances(cam, sig.free, seg.classes)
        else:
            sig = Signals(seg.classes, **extra)
        return EmitSink(uris, sig, stats, **kw)

    print("jetseg from {}; {} on {} frames of {}; emit {}{}{}; {} pairs".format(
        os.path.dirname(jetseg.__file__), os.path.basename(args.model), len(frames), args.clip,
        " ".join(uris), " + obstacles" if args.camera_height else "",
        " (live: newest wins)" if kw.get("live") else "", args.pairs))
    run(seg, frames, len(frames), None)                                  # warm-up
    ratios, cpus, renders = [], [], []
    for i in range(args.pairs):
        order = [None, factory] if i % 2 == 0 else [factory, None]
        got = dict((f is not None, run(seg, frames, len(frames), f)) for f in order)
        ratios.append(got[True][0] / got[False][0])
        cpus.append(got[False][1] / got[True][1])
        renders.append((got[False][2], got[True][2]))
        print("  pair {}: without {:6.2f} fps {:6.1f} CPU ms/frame {:5.2f} ms render   with "
              "{:6.2f} fps {:6.1f} CPU ms/frame {:5.2f} ms render   fps ratio {:.3f}".format(
                  i + 1, got[False][0], got[False][1], got[False][2], got[True][0],
                  got[True][1], got[True][2], ratios[-1]), flush=True)
    med, cmed = statistics.median(ratios), statistics.median(cpus)
    print("median fps ratio {:.3f}: emitting costs {:+.1f} % fps (spread {:.3f}..{:.3f})".format(
        med, 100 * (1 - med), min(ratios), max(ratios)))
    print("median CPU ratio {:.3f}: on a CPU-bound machine that is {:+.1f} % fps (spread "
          "{:.3f}..{:.3f})".format(cmed, 100 * (1 - cmed), min(cpus), max(cpus)))
    print("render stage (the camera loop's sinks) p50: {:.2f} ms without, {:.2f} ms with".format(
        statistics.median(r[0] for r in renders), statistics.median(r[1] for r in renders)))


if __name__ == "__main__":
    main()
