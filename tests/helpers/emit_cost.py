"""What --emit costs the camera loop: interleaved runs with and without it, figures printed.

    python3 -m tests.helpers.emit_cost              # udp://, jsonl: and mavlink:, nobody there
    python3 -m tests.helpers.emit_cost --emit udp://127.0.0.1:9 --cycles 60
    python3 -m tests.helpers.emit_cost --geometry ""           # no camera height: no obstacles
    PYTHONPATH=/other/checkout python3 tests/helpers/emit_cost.py       # older code, same frames

Frames are decoded once and held in memory (jetseg bench's MemorySource); every run goes
through the real Pipeline with the render work jetseg-camera does (overlay, class counts),
and an emitting run adds the sink that jetseg-camera's own flags build
(jetseg.cli.emitargs.emit_sink, with ``--geometry``'s camera flags) with no receiver.

The main figure comes from one long run whose frames go in blocks (``--block``, default 60
frames, about 1.5 s): a block without emitting, then a block for each target, over and over
(``--cycles``); each target's block is compared with the blocks without emitting just before
and after it. On this shared 2-core machine whole runs a minute apart differ by 15-20 % with
identical work, which hides a cost of a few per cent; blocks seconds apart drift far less.
Printed per target: the median fps ratio with its quartiles, and the median ratio of process
CPU per frame (what a CPU-bound machine loses). ``--rounds N`` adds the older whole-run
comparison. Then, apart from the pipeline, the signals thread's own CPU per record for each
target, as a share of a frame's CPU without emitting. Nothing is asserted: timing belongs to
benchmarks, not tests.
"""
import argparse
import os
import shutil
import shlex
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):             # run as a file: the checkout on PYTHONPATH wins
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

TARGETS = ["udp://127.0.0.1:9", "jsonl:", "mavlink:udpout:127.0.0.1:9"]   # port 9: nobody


def run(seg, frames, total, make_sink):
    """(fps, process CPU ms per frame, render p50 ms) of one pipeline run."""
    from jetseg.cli.bench import MemorySource, RenderSink
    from jetseg.io.pipeline import Pipeline
    pipe = Pipeline(MemorySource(frames, total), seg, sinks=[RenderSink("overlay")])
    if make_sink:
        pipe.sinks.append(make_sink(pipe))
    t0, c0 = time.perf_counter(), time.process_time()
    stats = pipe.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return stats.frames / wall, 1000.0 * cpu / stats.frames, stats.stages["render"].percentile(50)


def sink_factory(uri, args, seg):
    """A function pipe -> the EmitSink jetseg-camera builds for ``--emit uri``."""
    from jetseg.cli.camera import build_parser
    from jetseg.cli.emitargs import emit_sink
    argv = ["--engine", args.model, "--emit", uri] + shlex.split(args.geometry)
    cam_args = build_parser().parse_args(argv)

    def make(pipe):
        pipe.source.live = args.live            # a file: every frame gets its record
        return emit_sink(cam_args, seg, pipe.source, pipe.stats)
    return make


class Gate(object):
    """Hands a result to ``sink`` only in its own blocks of frames (``on(i)``)."""

    def __init__(self, sink, on):
        self.sink, self.on, self.i = sink, on, 0

    def write(self, res):
        if self.on(self.i):
            self.sink.write(res)
        self.i += 1

    def close(self):
        self.sink.close()


class Clock(object):
    """The last sink: wall and process CPU time after each frame's render work."""

    def __init__(self):
        self.t, self.cpu = [], []

    def write(self, res):
        self.t.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def close(self):
        pass


def timed(fn, acc):
    """``fn`` (e.g. ``EmitSink.emit``) adding its thread CPU seconds and a count to ``acc``."""
    def run(*a, **k):
        t = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            acc[0] += time.thread_time() - t
            acc[1] += 1
    return run


def interleaved(seg, frames, factories, block, cycles, settle):
    """One long pipeline run whose frames go in blocks of ``block``: without emitting, then
    each target in turn, ``cycles`` times, so each target's blocks are paired with the
    blocks without emitting right before and after them, seconds apart (a shared machine
    whose speed drifts over seconds hits both alike, unlike whole runs a minute apart).
    The first ``settle`` frames of a block are not timed: the signals thread may still be
    finishing the previous block's records. Returns per configuration (0: without) the
    list of (fps, CPU ms per frame) of its blocks, in cycle order."""
    from jetseg.cli.bench import MemorySource, RenderSink
    from jetseg.io.pipeline import Pipeline
    n = len(factories)
    total = block * n * cycles
    pipe = Pipeline(MemorySource(frames, total), seg, sinks=[RenderSink("overlay")])
    spent = [[0.0, 0] for _ in factories]        # signals thread CPU s, records, in the run
    for k, make in enumerate(factories[1:], 1):
        sink = make(pipe)
        sink.emit = timed(sink.emit, spent[k])
        pipe.sinks.append(Gate(sink, lambda i, k=k: (i // block) % n == k))
    clock = Clock()
    pipe.sinks.append(clock)
    pipe.run()
    interleaved.spent = [1000.0 * s / max(1, c) for s, c in spent]
    got = [[] for _ in factories]
    for b in range(len(clock.t) // block):
        a, z = b * block + settle, (b + 1) * block - 1
        fps = (z - a) / (clock.t[z] - clock.t[a])
        got[b % n].append((fps, 1000.0 * (clock.cpu[z] - clock.cpu[a]) / (z - a)))
    return got


def report_interleaved(got, targets, block, settle):
    base = got[0]
    print("interleaved blocks of {} frames (first {} not timed), {} cycles; without "
          "emitting: median {:.2f} fps, {:.1f} CPU ms/frame".format(
              block, settle, len(base), statistics.median(b[0] for b in base),
              statistics.median(b[1] for b in base)))
    for k, t in enumerate(targets, 1):
        fps, cpu = [], []
        for c, (f, u) in enumerate(got[k]):
            around = [base[c]] + ([base[c + 1]] if c + 1 < len(base) else [])
            fps.append(f / statistics.mean(b[0] for b in around))
            cpu.append(statistics.mean(b[1] for b in around) / u)
        med, cmed = statistics.median(fps), statistics.median(cpu)
        print("--emit {}: fps ratio {:.3f} = emitting costs {:+.1f} % fps (quartiles "
              "{:.3f}..{:.3f}, {} pairs); CPU ratio {:.3f} = {:+.1f} % fps on a CPU-bound "
              "machine (quartiles {:.3f}..{:.3f})".format(
                  t, med, 100 * (1 - med), *quartiles(fps), len(fps), cmed, 100 * (1 - cmed),
                  *quartiles(cpu)))
        ms = getattr(interleaved, "spent", None)
        if ms:
            base_cpu = statistics.median(b[1] for b in base)
            print("    signals thread in this run: {:.2f} ms CPU a record = {:.1f} % of a "
                  "frame's CPU without emitting".format(ms[k], 100.0 * ms[k] / base_cpu))


def worker_ms(seg, frames, factories, fps, rounds=5):
    """Thread CPU ms of one record's work in the signals thread (``EmitSink.emit``: the
    signals, encoding, handing to the emitter), per target, measured apart from the
    pipeline on the same frames: the part of the cost that does not depend on how threads
    share a busy machine. Paced at ``fps`` so rate limits act as in the camera loop."""
    from jetseg.cli.bench import MemorySource, RenderSink
    from jetseg.io.pipeline import Pipeline
    results = []
    for i, f in enumerate(frames):
        res = seg.process(f)
        res.frame_id, res.captured_at, res.latency_ms = i, time.time(), 30.0
        RenderSink("overlay").write(res)                 # what the render thread did first
        results.append(res)
    sinks = [make(Pipeline(MemorySource(frames, 1), seg)) for make in factories]
    ms = [[] for _ in sinks]
    for _ in range(rounds):
        for k, sink in enumerate(sinks):
            for res in results:
                t = time.thread_time()
                sink.emit(res)
                ms[k].append(1000.0 * (time.thread_time() - t))
                time.sleep(1.0 / fps)
    for sink in sinks:
        sink.close()
    return [statistics.mean(m) for m in ms]            # a mean: rate-limited parts count


def rounds(seg, frames, factories, targets, args):
    """Whole runs with and without emitting, in rotating order (``--rounds``)."""
    got = [[] for _ in factories]          # per configuration: (fps, cpu, render) per round
    for r in range(args.rounds):
        order = list(range(len(factories)))
        order = order[r % len(order):] + order[:r % len(order)]           # rotate
        res = {}
        for k in order:
            res[k] = run(seg, frames, args.frames, factories[k])
        for k in res:
            got[k].append(res[k])
        each = ["{} fps x{:.3f} CPU/frame x{:.3f}".format(
            t.split(":")[0], res[k][0] / res[0][0], res[k][1] / res[0][1])
            for k, t in enumerate(targets, 1)]
        print("  round {}: without {:6.2f} fps {:5.1f} CPU ms/frame | {}".format(
            r + 1, res[0][0], res[0][1], " | ".join(each)), flush=True)
    base = got[0]
    print("median without emitting: {:.2f} fps, {:.1f} CPU ms/frame, render p50 {:.2f} ms".format(
        statistics.median(b[0] for b in base), statistics.median(b[1] for b in base),
        statistics.median(b[2] for b in base)))
    for k, t in enumerate(targets, 1):
        fps = [w[0] / b[0] for w, b in zip(got[k], base)]
        cpu = [b[1] / w[1] for w, b in zip(got[k], base)]
        med, cmed = statistics.median(fps), statistics.median(cpu)
        print("--emit {}: fps ratio {:.3f} = emitting costs {:+.1f} % fps (spread {:.3f}..{:.3f}, "
              "quartiles {:.3f}..{:.3f}); CPU ratio {:.3f} = {:+.1f} % fps on a CPU-bound "
              "machine; render p50 {:.2f} ms".format(
                  t, med, 100 * (1 - med), min(fps), max(fps), *quartiles(fps), cmed,
                  100 * (1 - cmed), statistics.median(w[2] for w in got[k])))


PARTS = [("jetseg.autopilot.emit", "estimate_horizon", "horizon fit (its share)"),
         ("jetseg.autopilot.emit", "free_space", "free space"),
         ("jetseg.autopilot.obstacles:ObstacleDistances", "measure", "obstacle distances"),
         ("jetseg.autopilot.emit:Signals", "record", "the whole record"),
         ("jetseg.autopilot.emit:EmitSink", "emit", "record, JSON text and sending")]


def parts(seg, frames, factories, targets, total):
    """Where a record's signals-thread CPU goes, inside a pipeline run of ``total`` frames a
    target: thread CPU of each part (``PARTS``) per record, the same functions wrapped."""
    import importlib
    for k, t in enumerate(targets, 1):
        acc, undo = {}, []
        for where, name, label in PARTS:
            mod, _, cls = where.partition(":")
            owner = getattr(importlib.import_module(mod), cls) if cls else \
                importlib.import_module(mod)
            undo.append((owner, name, getattr(owner, name)))
            acc[label] = [0.0, 0]
            setattr(owner, name, timed(getattr(owner, name), acc[label]))
        try:
            run(seg, frames, total, factories[k])
        finally:
            for owner, name, f in undo:
                setattr(owner, name, f)
        n = max(1, acc["record, JSON text and sending"][1])
        print("--emit {}: thread CPU per record, in a {}-frame run".format(t, total))
        for _, _, label in PARTS:
            ms, calls = acc[label]
            print("    {:32s} {:6.3f} ms ({} calls)".format(label, 1000.0 * ms / n, calls))


def quartiles(xs):
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]    # noqa: E731
    return q(0.25), q(0.75)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="engines/camvid.onnx")
    p.add_argument("--clip", default="samples/camvid-demo.mp4")
    p.add_argument("--frames", type=int, default=120, help="frames per run (the clip's "
                   "first 50 decoded once, replayed)")
    p.add_argument("--rounds", type=int, default=0,
                   help="also whole runs with and without emitting, in rotating order, this "
                        "many times (default 0: on a machine whose speed drifts, runs a "
                        "minute apart differ by more than the cost measured)")
    p.add_argument("--block", type=int, default=60,
                   help="frames a block in the interleaved run (default %(default)s)")
    p.add_argument("--cycles", type=int, default=30,
                   help="blocks of each configuration in the interleaved run (default "
                        "%(default)s; 0: skip it)")
    p.add_argument("--settle", type=int, default=12,
                   help="first frames of a block not timed (default %(default)s)")
    p.add_argument("--parts", type=int, default=0, metavar="FRAMES",
                   help="also one run of this many frames a target with the signals' parts "
                        "timed (horizon fit, free space, obstacle distances, the record, "
                        "sending): where a record's CPU goes")
    p.add_argument("--worker-frames", type=int, default=20,
                   help="frames for the signals thread's own work, timed apart (0: skip)")
    p.add_argument("--emit", action="append",
                   help="a target (repeatable; default: {}; 'jsonl:' alone is a temporary "
                        "file)".format(" ".join(TARGETS)))
    p.add_argument("--geometry", default="--camera-height 1.5 --camera-pitch -10",
                   help="jetseg-camera camera flags (default %(default)r: obstacle distances "
                        "on; '' for none, as far as the targets allow)")
    p.add_argument("--live", action="store_true",
                   help="hand results over as for a live camera (the newest wins) instead of "
                        "as for a file (every frame gets its record)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads (default: jetseg's own, every physical core: the "
                        "CPU-bound case users get; 1 leaves a core to the rest)")
    args = p.parse_args()
    import jetseg
    from jetseg import Segmenter
    from jetseg.cli.bench import load_frames
    tmp = tempfile.mkdtemp(prefix="emit_cost-")
    targets = [os.path.join("jsonl:" + tmp, "emit.jsonl") if t == "jsonl:" else t
               for t in (args.emit or TARGETS)]
    seg = Segmenter(args.model, threads=args.threads)
    frames = load_frames(args.clip, 50)
    if isinstance(frames, tuple):                     # newer bench: (frames, fps)
        frames = frames[0]
    factories = [None] + [sink_factory(t, args, seg) for t in targets]
    print("jetseg from {}; {} on {} frames a run ({} decoded from {}, {}x{}); geometry {!r}; "
          "{}; {} rounds; inference threads: {}".format(
              os.path.dirname(jetseg.__file__), os.path.basename(args.model), args.frames,
              len(frames), args.clip, frames[0].shape[1], frames[0].shape[0], args.geometry,
              "live: newest wins" if args.live else "file: every frame", args.rounds,
              args.threads or "jetseg's default"))
    run(seg, frames, args.frames, None)                                   # warm-up
    for f in factories[1:]:
        run(seg, frames, 10, f)
    blocks = []
    if args.cycles > 0:
        blocks = interleaved(seg, frames, factories, args.block, args.cycles, args.settle)
        report_interleaved(blocks, targets, args.block, args.settle)
    if args.rounds > 0:
        rounds(seg, frames, factories, targets, args)
    if args.parts > 0:
        parts(seg, frames, factories, targets, args.parts)
    base = blocks[0] if args.cycles > 0 else []
    base_fps = statistics.median(b[0] for b in base) if base else 30.0
    base_cpu = statistics.median(b[1] for b in base) if base else float("nan")
    work = worker_ms(seg, frames[:args.worker_frames], factories[1:], base_fps) \
        if args.worker_frames > 0 else []
    if work:
        print("signals thread's own work per record (thread CPU, mean, paced at {:.1f} fps), "
              "against {:.1f} CPU ms a frame without emitting:".format(base_fps, base_cpu))
    for t, w in zip(targets, work):
        print("  --emit {}: {:.2f} ms = {:.1f} % of a frame's CPU".format(
            t, w, 100.0 * w / base_cpu))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
