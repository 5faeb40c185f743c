"""``jetseg bench``: model-only vs full pipeline vs the naive loop, on the same frames, for
every installed backend.

Figures are medians over repeats with their spread (min..max), printed side by side with
their ratios and, for each goal, a verdict (meets / misses); goals are reported, never
asserted. The repeats of every backend and row are interleaved, so a load change on a
shared machine hits them all alike. A pipeline's frames a second count the time frames
flow through it; what it does once a file (open a video, finish a recording) is printed
under the table with where each stage's time goes. Memory (``--soak N``, off by default):
peak RSS, and RSS growth over a long pipeline run measured after a warm-up.
"""
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

from jetseg.cli.bench_naive import fps_of as _fps, naive_ort, naive_torch, timed as _timed
from jetseg.errors import JetsegError, log
from jetseg.files import is_video_path
from jetseg.io.outputs import FileSink, picture_for
from jetseg.io.pipeline import Pipeline
from jetseg.io.sources import Source, open_source

PIPELINE_GOAL = 0.90        # pipeline fps / model-only fps (recording: / pipeline fps)
RECORDING = "pipeline + H.264 file"
NAIVE_GOAL = 3.0            # jetseg pipeline fps / naive loop fps
NAIVE_FRAMES = 10           # the naive loops are slow: they run on the first frames only,
NAIVE_REPEATS = 3           # at most this many times
# every backend `jetseg bench` can time, in the order rows are printed after auto's pick
BENCH_BACKENDS = (("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                  ("tensorrt", "tensorrt"))


class MemorySource(Source):
    """Frames held in memory, replayed ``total`` times in all (no decode cost)."""

    def __init__(self, frames, total):
        self.frames, self.total, self.i = frames, total, 0
        self.uri = "memory"

    def read(self):
        if self.i >= self.total:
            return None
        f = self.frames[self.i % len(self.frames)]
        self.i += 1
        return "f{}".format(self.i), f


class RenderSink(object):
    """What jetseg-camera does per frame besides inference: the overlay and the class map."""

    def __init__(self, visualize):
        self.visualize = visualize

    def write(self, res):
        picture_for(res, self.visualize)
        res.class_counts()

    def close(self):
        pass


def pipeline_rows(bench):
    """The pipelines timed for each backend, as (label, run(seg) -> the run's Stats): each
    is a Pipeline over ``len(bench.clip)`` frames; its ratio is to the same backend's model
    only. A new row (another sink, another source) is one more entry here."""
    n, vis = len(bench.clip), bench.visualize

    def in_memory(seg):
        return Pipeline(MemorySource(bench.clip, n), seg, [RenderSink(vis)]).run()

    def file_to_file(seg):
        sink = FileSink(os.path.join(bench.tmp, "out.mp4"), vis, fps=bench.fps)
        return Pipeline(open_source(bench.source), seg, [sink], max_frames=n).run()

    def recording(seg):         # what jetseg-camera does with out.mp4: H.264, crash-safe
        sinks = [RenderSink(vis), FileSink(os.path.join(bench.tmp, "rec.mp4"), vis,
                                           fps=bench.fps or 30.0)]
        return Pipeline(MemorySource(bench.clip, n), seg, sinks).run()
    rows = [("full pipeline", in_memory), (RECORDING, recording)]
    if bench.video:
        rows.append(("file in, file out", file_to_file))
    return rows


def where_time_goes(name, runs, model_ms):
    """One line: the median ms a frame of each stage over ``runs`` ((Stats, wall seconds) of
    a row's repeats), the share of the frames' time the model was running, which bounds the
    row's ratio to model only (the rest: the inference thread's waits and work outside the
    model), and the ms a run spent outside the frames (opening the files, finishing them)."""
    stats = [r for r, _ in runs]
    ms = [float(np.median(np.concatenate([r.stages[s].samples() for r in stats])))
          for s in ("capture", "preprocess", "inference", "render")]
    busy = sum(float(np.sum(r.stages["inference"].samples())) for r in stats) / \
        max(1e-9, 1000.0 * sum(r.elapsed for r in stats))
    outside = float(np.median([1000.0 * (wall - r.elapsed) for r, wall in runs]))
    return ("    {}: ms a frame (p50) capture {:.1f}, preprocess {:.1f} (capture thread), "
            "inference {:.1f} (model only {:.1f}), render {:.1f}; the model ran {:.0f}% of "
            "the time; {:.0f} ms a run opening and closing source and outputs (not in the "
            "fps)".format(name, ms[0], ms[1], ms[2], model_ms, ms[3], 100.0 * busy, outside))


def _pipeline_fps(fn, seg, kept):
    """Frames a second while frames flow through the pipeline ``fn(seg)`` runs (its Stats:
    from its start to the last frame rendered), and (Stats, wall seconds) to ``kept``: the
    once-a-file work around it (opening a video, finishing a recording: its remux and
    fsync) is no per-frame cost, and is shown beside the row instead."""
    t0 = time.perf_counter()
    stats = fn(seg)
    kept.append((stats, time.perf_counter() - t0))
    return stats.frames / stats.elapsed


def rss_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (IOError, OSError, ValueError):
        return float("nan")


def peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss     # KiB on Linux, bytes on macOS
    return peak * 1024 / 1e6 if sys.platform != "darwin" else peak / 1e6


def load_frames(uri, count):
    src = open_source(uri)
    frames = []
    for _, frame in src:
        frames.append(frame)
        if len(frames) >= count:
            break
    fps = getattr(src, "fps", None)
    src.close()
    if not frames:
        raise JetsegError("no frames", path=uri, fix="give a video, image or folder")
    return frames, fps


def model_only(seg, frames, repeats=1):
    """backend.run alone on tensors prepared beforehand (the outputs a frame of this size
    fetches, as the pipeline does). Returns fps per repeat and a ``run`` for more."""
    feeds = [dict((k, v.copy()) for k, v in seg.feeds(f).items()) for f in frames]
    h, w = frames[0].shape[:2]
    names = seg.plan.fetch(seg.net_size in (None, (w, h)))
    seg.backend.run(feeds[0], names)

    def run():
        for fd in feeds:
            seg.backend.run(fd, names)
        return len(feeds)
    return _timed(run, repeats), run


def soak(seg, frames, total, visualize):
    """RSS after a warm-up tenth of the run vs at its end."""
    marks = {}

    def mark(res):
        if res.frame_id == max(10, total // 10):
            marks["warm"] = rss_mb()
    pipe = Pipeline(MemorySource(frames, total), seg, [RenderSink(visualize)], on_result=[mark])
    stats = pipe.run()
    end = rss_mb()
    warm = marks.get("warm", float("nan"))
    return warm, end, stats.frames


HEAD = "  {:<22} {:>9} {:>17} {:>9} {:>7}  {:<30} {}"


def _row(name, vals, base=None, goal="", verdict="", note=""):
    if vals is None:
        return "  {:<22} {}".format(name, note)
    med = float(np.median(vals))
    ratio = "" if base is None else "{:.2f}x".format(med / base)
    return HEAD.format(name, "{:.1f}".format(med), "{:.1f}..{:.1f}".format(min(vals), max(vals)),
                       "{:.2f}".format(1000.0 / med), ratio, goal or note, verdict).rstrip()


def verdict(value, goal):
    """Judged on the figure as printed (2 decimals), so a printed 0.90x never misses 0.90x."""
    return "meets goal" if round(value, 2) >= goal else "misses goal"


class Bench(object):
    """The frames and settings one ``jetseg bench`` run shares between its backends."""

    def __init__(self, source, frames, repeats, visualize):
        self.source, self.repeats, self.visualize = source, repeats, visualize
        self.clip, self.fps = load_frames(source, frames)
        self.video = is_video_path(str(source)) and os.path.isfile(str(source))
        self.tmp = tempfile.mkdtemp(prefix="jetseg-bench-")

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def describe(seg):
    from jetseg.backends import cpu_cores
    b = seg.backend
    threads = getattr(b, "threads", None)
    return "{} ({}){}".format(b.name, ", ".join(b.providers), "" if threads is None else
                              "; inference on {} of {} cores".format(threads, cpu_cores()))


def run_bench(segs, source, frames=30, repeats=5, soak_frames=0, visualize="overlay",
              out=sys.stdout):
    """Time every Segmenter in ``segs`` (one per backend; the first is ``auto``'s pick)."""
    bench = Bench(source, frames, repeats, visualize)
    try:
        return _run(bench, segs, soak_frames, out)
    finally:
        bench.close()


def _run(bench, segs, soak_frames, out):
    clip = bench.clip
    h, w = clip[0].shape[:2]
    p = lambda s="": out.write(s + "\n")
    t0, load0 = time.time(), _load()
    p("jetseg bench: {} on {} ({} frames {}x{}, {} repeats interleaved; medians, spread "
      "min..max)".format(os.path.basename(segs[0].path), bench.source, len(clip), w, h,
                         bench.repeats))
    rows = pipeline_rows(bench)
    runs = [model_only(seg, clip)[1] for seg in segs]      # each warmed up once
    figures = [dict((name, []) for name in ["model only"] + [r[0] for r in rows])
               for _ in segs]
    kept = [dict((r[0], []) for r in rows) for _ in segs]       # each pipeline run's Stats
    for _ in range(bench.repeats):
        for seg, run, fig, stages in zip(segs, runs, figures, kept):
            fig["model only"].append(_fps(run))
            for name, fn in rows:
                fig[name].append(_pipeline_fps(fn, seg, stages[name]))
    p(HEAD.format("", "fps (p50)", "spread (min..max)", "ms/frame", "ratio", "goal",
                  "verdict"))
    results = {}
    for seg, fig, stages in zip(segs, figures, kept):
        p("  {}".format(describe(seg)))
        base = float(np.median(fig["model only"]))
        p(_row("model only", fig["model only"], base, note="(baseline)"))
        for name, _ in rows:
            ratio = float(np.median(fig[name])) / base
            if name == RECORDING:       # its goal is against the pipeline without recording
                rec = float(np.median(fig[name])) / float(np.median(fig["full pipeline"]))
                p(_row(name, fig[name], base, goal="{:.2f}x the pipeline without (goal >= "
                       "{:.2f}x)".format(rec, PIPELINE_GOAL), verdict=verdict(rec, PIPELINE_GOAL)))
                continue
            p(_row(name, fig[name], base, goal=">= {:.2f}x model only".format(PIPELINE_GOAL),
                   verdict=verdict(ratio, PIPELINE_GOAL)))
        for name, _ in rows:
            p(where_time_goes(name, stages[name], 1000.0 / base))
        results[seg.backend.name] = fig
    first = figures[0]
    memory = None
    if soak_frames:     # before the torch baseline, whose import would swell the peak RSS
        started = time.perf_counter()
        warm, end, n = soak(segs[0], clip, soak_frames, bench.visualize)
        memory = (peak_rss_mb(), warm, end, n, 100.0 * (end - warm) / warm,
                  time.perf_counter() - started)
    pl = float(np.median(first["full pipeline"]))
    base = float(np.median(first["model only"]))
    p("  baselines: the loops people write first ({} frames, {} repeats; ratio to {} model "
      "only)".format(min(len(clip), NAIVE_FRAMES), min(bench.repeats, NAIVE_REPEATS),
                     segs[0].backend.name))
    few = clip[:NAIVE_FRAMES]
    ort = [s for s in segs if s.backend.name == "onnxruntime"]
    reps = min(bench.repeats, NAIVE_REPEATS)
    nv, why = naive_ort((ort or segs)[0], few, reps)
    label = "naive loop (numpy+{})".format("ORT" if ort else segs[0].backend.name)
    tv, why_t = naive_torch(segs[0], few, reps)
    for name, vals, why in ((label, nv, why), ("naive loop (torch)", tv, why_t)):
        if vals is None:
            p(_row(name, None, note="skipped: " + why))
            continue
        x = pl / float(np.median(vals))
        p(_row(name, vals, base, goal="jetseg pipeline is {:.1f}x faster (goal >= {:.0f}x)"
               .format(x, NAIVE_GOAL), verdict=verdict(x, NAIVE_GOAL)))
    if memory:
        p("  memory (jetseg only): peak RSS {:.1f} MB; RSS {:.1f} MB after warm-up -> {:.1f} MB "
          "after {} frames: {:+.2f}% (goal < 1%), {:.0f} s".format(*memory) + "  " +
          ("meets goal" if round(memory[4], 2) < 1.0 else "misses goal"))
    p("  {:.0f} s; machine load (1 min average) {} at the start, {} at the end: other work "
      "on the machine widens the spreads".format(time.time() - t0, load0, _load()))
    results.update(naive_ort=nv, naive_torch=tv)
    return results


def _load():
    try:
        return "{:.1f}".format(os.getloadavg()[0])
    except (AttributeError, OSError):
        return "unknown"


def bench_backends(model, asked):
    """The backends to time: the one asked for, or (``auto``) auto's pick first, then every
    other installed one that runs this file."""
    import importlib.util
    from jetseg.backends import ENGINE_EXTS, choose_backend
    first = choose_backend(model, asked)
    if asked != "auto" or os.path.splitext(str(model))[1].lower() in ENGINE_EXTS:
        return [first]
    return [first] + [name for name, module in BENCH_BACKENDS if name != first and
                      importlib.util.find_spec(module) is not None]


def register(sub, common):
    from jetseg.cli.common import add_model_args
    b = sub.add_parser("bench", parents=[common], help="model-only vs pipeline vs naive fps",
                       description="Measure model-only, full-pipeline and naive-loop speed on "
                                   "the same frames, for every installed backend (or the one "
                                   "--backend names), each figure a median of repeats with "
                                   "its spread and a verdict for each goal.")
    add_model_args(b, visualisation="draw")
    b.add_argument("input", nargs="?", default="samples/camvid-demo.mp4",
                   help="video, image folder or glob (frames are held in memory; a video "
                        "is also decoded and written again: the file-in, file-out row; "
                        "default: %(default)s)")
    b.add_argument("--frames", type=int, default=30,
                   help="frames per repeat (default: %(default)s)")
    b.add_argument("--repeats", type=int, default=5,
                   help="repeats of every row; figures are their median (default: "
                        "%(default)s)")
    b.add_argument("--soak", type=int, default=0, metavar="N",
                   help="also run N frames through the pipeline and report RSS growth "
                        "(default: %(default)s, off; e.g. 10000 for a memory check of a few "
                        "minutes)")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args):
    from jetseg.cli.common import segmenter_from_args
    if args.frames < 1 or args.repeats < 1 or args.soak < 0:
        raise JetsegError("--frames and --repeats must be at least 1, --soak 0 or more",
                          fix="e.g. --frames 30 --repeats 5")
    segs = []
    for name in bench_backends(args.model, args.backend):
        args.backend = name
        try:
            segs.append(segmenter_from_args(args))
        except JetsegError as e:
            if not segs:            # the backend asked for (or auto's pick) must work
                raise
            log.warning("bench: %s skipped: %s", name, e)
            continue
    try:
        run_bench(segs, args.input, frames=args.frames, repeats=args.repeats,
                  soak_frames=args.soak, visualize=args.visualize)
    finally:
        for seg in segs:
            seg.close()
    return 0
