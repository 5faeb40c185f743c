"""``jetseg segment``: images, folders, globs or a video in; overlays, masks, class-id PNGs or
a video out."""
import time

from jetseg.cli.common import add_model_args, format_fractions, segmenter_from_args
from jetseg.errors import JetsegError, log


def register(sub, common):
    s = sub.add_parser("segment", parents=[common], help="segment images, folders or videos",
                       description="Segment an image, a folder, a quoted glob or a video; "
                                   "write overlays, masks, class-id PNGs or a video.")
    add_model_args(s)
    s.add_argument("input", help="image, folder, quoted glob (\"imgs/*.jpg\") or video file")
    s.add_argument("output", nargs="?", help="image, folder, %%d pattern or .mp4/.avi")
    s.set_defaults(func=cmd_segment)


def cmd_segment(args):
    import numpy as np

    from jetseg.core import processing as render
    from jetseg.files import write_image
    from jetseg.io.outputs import open_output
    from jetseg.io.sources import ImageSource, open_source

    what = [w.strip() for w in args.visualize.split(",") if w.strip()]
    bad = [w for w in what if w not in ("overlay", "mask", "classes")]
    if bad or not what or ("classes" in what and len(what) > 1):
        raise JetsegError("--visualize {!r} is not understood".format(args.visualize),
                          fix="use overlay, mask, overlay,mask or classes")
    source = open_source(args.input)
    seg = segmenter_from_args(args)
    classes_out = what == ["classes"]
    if classes_out and len(seg.classes) > 256:
        raise JetsegError("class-id PNGs are 8-bit and the model has {} classes".format(
            len(seg.classes)), fix="use --visualize overlay")
    many = not (isinstance(source, ImageSource) and source.paths == [args.input])
    out = open_output(args.output, many, fps=None, classes=classes_out)
    log.info("%r", seg)
    total = np.zeros(len(seg.classes), np.int64)
    times = {}
    n = 0
    start = time.perf_counter()
    try:
        for name, frame in source:
            res = seg.process(frame)
            t0 = time.perf_counter()
            if classes_out:
                image = res.classes.astype(np.uint8)
            else:
                image = res.visualize(what)
            res.timings["postprocess_ms"] = 1000.0 * (time.perf_counter() - t0)
            if out is not None:
                if n == 0 and hasattr(out, "fps"):
                    out.fps = source.fps or out.fps
                out.write(name, image)
            counts = res.class_counts()
            total += counts
            for k, v in res.timings.items():
                times.setdefault(k, []).append(v)
            if args.stats:
                print("{}: {}".format(name, format_fractions(
                    seg.classes, counts / float(max(1, counts.sum())))))
            n += 1
    except BaseException:
        if out is not None:
            out.close()         # what was written so far stays playable
        raise
    if out is not None:
        out.close()
    elapsed = time.perf_counter() - start
    fractions = total / float(max(1, total.sum()))
    if args.legend:
        present = [i for i in range(len(seg.classes)) if total[i] > 0] or None
        write_image(args.legend, render.legend(seg.classes, seg.colors, present=present,
                                               fractions=fractions))
    if args.stats or not args.quiet:
        med = dict((k, sorted(v)[len(v) // 2]) for k, v in times.items())
        print("{} frame(s) in {:.2f}s ({:.1f} fps); median ms: {}".format(
            n, elapsed, n / elapsed if elapsed else 0.0,
            ", ".join("{} {:.1f}".format(k[:-3], v) for k, v in sorted(med.items()))))
        if n > 1 or not args.stats:
            print("classes: {}".format(format_fractions(seg.classes, fractions, limit=12)))
    return 0
