"""``jetseg bench``: model-only vs full pipeline (also while recording H.264) vs the naive
loop, on the same frames.

Figures are medians over repeats with their spread (min..max), printed side by side with
their ratios; goals are reported, never asserted. Memory: peak RSS, and RSS growth over a
long pipeline run (``--soak`` frames) measured after a warm-up.
"""
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

from jetseg.errors import JetsegError, log
from jetseg.io.outputs import FileSink, picture_for
from jetseg.io.pipeline import Pipeline
from jetseg.io.sources import Source, open_source


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
    src.close()
    if not frames:
        raise JetsegError("no frames", path=uri, fix="give a video, image or folder")
    return frames


def _timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        out.append(n / (time.perf_counter() - t0))
    return out


def model_only(seg, frames, repeats):
    """backend.run alone on tensors prepared beforehand."""
    feeds = [dict((k, v.copy()) for k, v in seg.feeds(f).items()) for f in frames]
    seg.backend.run(feeds[0])

    def run():
        for fd in feeds:
            seg.backend.run(fd)
        return len(feeds)
    return _timed(run, repeats)


def pipeline_fps(seg, frames, repeats, visualize):
    def run():
        stats = Pipeline(MemorySource(frames, len(frames)), seg, [RenderSink(visualize)]).run()
        return stats.frames
    return _timed(run, repeats)


def recording_fps(seg, frames, repeats, visualize):
    """The pipeline while it records an H.264 file of what it shows (encoder chosen as for
    jetseg-camera; the file is finished, remux included, inside each timed run)."""
    d = tempfile.mkdtemp(prefix="jetseg-bench-")
    try:
        def run():
            sinks = [RenderSink(visualize), FileSink(os.path.join(d, "rec.mp4"), visualize,
                                                     fps=30)]
            return Pipeline(MemorySource(frames, len(frames)), seg, sinks).run().frames
        return _timed(run, repeats), None
    except JetsegError as e:
        return None, str(e)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def naive_ort(seg, frames, repeats):
    """The loop people write first: per-frame float64 transforms, NCHW numpy argmax,
    a Python loop over classes for the overlay; the model's raw scores from ONNX Runtime."""
    import cv2
    info = seg.info
    scores_name = info.outputs.get("scores")
    if scores_name is None:
        return None, "the model file has no raw scores output"
    size = seg.net_size
    mean = np.array(info.mean).reshape(3, 1, 1)
    std = np.array(info.std).reshape(3, 1, 1)
    colors = seg.colors

    def one(frame):
        h, w = frame.shape[:2]
        img = cv2.resize(frame, size) if size else frame
        if info.graph.get("preprocess"):
            x = img[None].astype(np.dtype(info.input_dtype))
        else:
            rgb = img[:, :, ::-1] / 255.0
            x = ((rgb.transpose(2, 0, 1) - mean) / std)[None].astype(np.float32)
        scores = seg.backend.run({info.input_name: x}, names=[scores_name])[scores_name][0]
        classes = np.argmax(scores, axis=0)
        classes = cv2.resize(classes.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        overlay = frame.astype(np.float64)
        for c in range(len(colors)):
            m = classes == c
            a = (colors[c][3] if len(colors[c]) > 3 else seg.alpha) / 255.0
            overlay[m] = overlay[m] * (1 - a) + np.array(colors[c][:3][::-1]) * a
        return overlay.astype(np.uint8)

    def run():
        for f in frames:
            one(f)
        return len(frames)
    one(frames[0])
    return _timed(run, repeats), None


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


def _row(name, vals, base=None, note=""):
    if vals is None:
        return "  {:<22} {}".format(name, note)
    med = float(np.median(vals))
    ratio = "" if base is None else "{:6.2f}x".format(med / base)
    return "  {:<22} {:9.1f} {:>17} {:9.2f} {:>9}  {}".format(
        name, med, "{:.1f}..{:.1f}".format(min(vals), max(vals)), 1000.0 / med, ratio, note)


def run_bench(seg, source, frames=60, repeats=5, soak_frames=10000, visualize="overlay",
              out=sys.stdout):
    clip = load_frames(source, frames)
    h, w = clip[0].shape[:2]
    p = lambda s="": out.write(s + "\n")
    p("jetseg bench: {} on {} ({} frames {}x{}, {} repeats, {} {})".format(
        os.path.basename(seg.path), source, len(clip), w, h, repeats, seg.backend.name,
        ",".join(seg.backend.providers)))
    p("  {:<22} {:>9} {:>17} {:>9} {:>9}".format("", "fps (p50)", "spread (min..max)",
                                                  "ms/frame", "ratio"))
    mo = model_only(seg, clip, repeats)
    base = float(np.median(mo))
    p(_row("model only", mo, base, "(baseline)"))
    pl = pipeline_fps(seg, clip, repeats, visualize)
    p(_row("full pipeline", pl, base, "goal >= 0.90x model-only"))
    rec, why = recording_fps(seg, clip, repeats, visualize)
    if rec is None:
        p(_row("pipeline + H.264 file", None, note="skipped: " + why))
    else:
        p(_row("pipeline + H.264 file", rec, base, "{:.2f}x the pipeline without "
               "(goal >= 0.90x)".format(float(np.median(rec)) / float(np.median(pl)))))
    memory = None
    if soak_frames:     # before the torch baseline, whose import would swell the peak RSS
        t0 = time.perf_counter()
        warm, end, n = soak(seg, clip, soak_frames, visualize)
        memory = (peak_rss_mb(), warm, end, n, 100.0 * (end - warm) / warm,
                  time.perf_counter() - t0)
    nv, why = naive_ort(seg, clip, repeats)
    if nv is None:
        p(_row("naive loop (numpy+ORT)", None, note="skipped: " + why))
    else:
        p(_row("naive loop (numpy+ORT)", nv, base,
               "jetseg pipeline is {:.1f}x faster (goal >= 3x)".format(
                   float(np.median(pl)) / float(np.median(nv)))))
    tv, why = naive_torch(seg, clip, repeats)
    if tv is None:
        p(_row("naive loop (torch)", None, note="skipped: " + why))
    else:
        p(_row("naive loop (torch)", tv, base, "jetseg pipeline is {:.1f}x faster "
               "(goal >= 3x)".format(float(np.median(pl)) / float(np.median(tv)))))
    if memory:
        p("  memory (jetseg only): peak RSS {:.1f} MB; RSS {:.1f} MB after warm-up -> {:.1f} MB "
          "after {} frames: {:+.2f}% (goal < 1%), {:.0f} s".format(*memory))
    return {"model_only": mo, "pipeline": pl, "recording": rec, "naive_ort": nv,
            "naive_torch": tv}


def naive_torch(seg, frames, repeats):
    """Torch eager with per-frame transforms, when jetseg_export (desktop, torch) can rebuild
    the model's architecture (weights do not matter for speed). The runtime itself never
    imports torch: only this optional baseline, through jetseg_export, does."""
    import importlib
    try:
        naive = importlib.import_module("jetseg_export.naive")
    except ImportError as e:
        return None, "needs the export extra with torch ({})".format(e)
    arch = seg.info.extra.get("arch")
    try:
        fn = naive.naive_torch_loop(arch, seg)
    except Exception as e:          # an arch torch cannot rebuild: report, do not fail
        log.debug("torch baseline: %s", e)
        return None, "architecture {!r} cannot be rebuilt in torch ({})".format(arch, e)
    fn(frames[:1])
    return _timed(lambda: fn(frames), repeats), None


def register(sub, common):
    from jetseg.cli.common import add_model_args
    b = sub.add_parser("bench", parents=[common], help="model-only vs pipeline vs naive fps",
                       description="Measure model-only, full-pipeline and naive-loop speed on "
                                   "the same frames, and memory over a long run.")
    add_model_args(b)
    b.add_argument("input", nargs="?", default="samples/camvid-demo.mp4",
                   help="video, image folder or glob (frames are held in memory)")
    b.add_argument("--frames", type=int, default=60, help="frames per repeat")
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--soak", type=int, default=10000,
                   help="frames for the RSS-growth run (0: skip)")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args):
    from jetseg.cli.common import segmenter_from_args
    seg = segmenter_from_args(args)
    run_bench(seg, args.input, frames=args.frames, repeats=args.repeats,
              soak_frames=args.soak, visualize=args.visualize)
    return 0
