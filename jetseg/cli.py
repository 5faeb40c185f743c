"""``jetseg`` command line: one console script, subcommands.

Errors a user can fix print as one line on stderr and exit with code 2; ``--debug`` shows
the traceback. Ctrl-C finishes what was being written and exits with 130.
"""
import argparse
import logging
import sys
import time

from .errors import JetsegError, log


def add_model_args(p, primary="--model"):
    """The model flags shared by every command that runs a model (segnet.py's names);
    ``--model`` and ``--engine`` are one flag, ``primary`` is the one help shows."""
    g = p.add_argument_group("model")
    names = ("--model", "--engine") if primary == "--model" else ("--engine", "--model")
    g.add_argument(*names, dest="model", required=True,
                   help="model file: .onnx (ONNX Runtime) or .engine (TensorRT)")
    g.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    g.add_argument("--labels", help="classes.txt (one name a line) for models without metadata")
    g.add_argument("--colors", help="colors.txt ('R G B [A]' a line)")
    g.add_argument("--mean", help="normalisation mean, 0..1 scale, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", help="normalisation std, 0..1 scale, e.g. 0.229,0.224,0.225")
    g.add_argument("--channel-order", choices=("RGB", "BGR"),
                   help="channel order the network was trained on (default RGB)")
    g.add_argument("--input-blob", help="name of the image input tensor")
    g.add_argument("--output-blob", help="name of the score-map output tensor")
    g.add_argument("--input-size", help="WxH for models with a dynamic input size")
    g.add_argument("--threads", type=int, help="CPU threads for inference")
    g.add_argument("--providers", help="ONNX Runtime providers in order, e.g. cuda,cpu "
                                       "(default: tensorrt, cuda, cpu as installed)")
    v = p.add_argument_group("visualisation")
    v.add_argument("--visualize", default="overlay",
                   help="overlay, mask, overlay,mask (side by side) or classes (class-id PNGs)")
    v.add_argument("--alpha", type=float, default=None,
                   help="overlay opacity 0-255 (default 150; explicit alphas in colors.txt win)")
    v.add_argument("--filter-mode", default="linear", choices=("point", "linear", "smooth"),
                   help="point: blocky exact; linear: blended colours (jetson-inference); "
                        "smooth: scores upsampled before argmax (sharp, exact edges)")
    v.add_argument("--ignore-class", default=None,
                   help="class id or name the argmax never picks (e.g. void)")
    v.add_argument("--legend", metavar="FILE", help="also write a legend picture")
    v.add_argument("--stats", action="store_true", help="print per-class pixel fractions")


def segmenter_from_args(args):
    from .segmenter import Segmenter
    return Segmenter(args.model, backend=args.backend, labels=args.labels, colors=args.colors,
                     mean=args.mean, std=args.std, channel_order=args.channel_order,
                     input_blob=args.input_blob, output_blob=args.output_blob,
                     input_size=args.input_size, alpha=args.alpha, filter_mode=args.filter_mode,
                     ignore_class=args.ignore_class, threads=args.threads,
                     providers=args.providers)


def _format_fractions(names, fractions, limit=6):
    order = sorted(range(len(names)), key=lambda i: -fractions[i])
    return ", ".join("{} {:.1f}%".format(names[i], 100.0 * fractions[i])
                     for i in order[:limit] if fractions[i] > 0)


def cmd_segment(args):
    import numpy as np

    from . import render
    from .imageio import write_image
    from .media import open_output
    from .sources import ImageSource, open_source

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
                print("{}: {}".format(name, _format_fractions(
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
            print("classes: {}".format(_format_fractions(seg.classes, fractions, limit=12)))
    return 0


def cmd_info(args):
    from .backends import open_backend
    from .modelinfo import ModelInfo
    b = open_backend(args.model, args.backend)
    info = ModelInfo.from_metadata(b.metadata, source=args.model)
    info.resolve(b.inputs, b.outputs, source=args.model)
    print("model:     {}".format(args.model))
    print("backend:   {} ({})".format(b.name, ", ".join(b.providers)))
    print("inputs:    {}".format(", ".join(repr(t) for t in b.inputs)))
    print("outputs:   {}".format(", ".join(repr(t) for t in b.outputs)))
    print("jetseg:    {}".format(info.describe() if info.has_metadata else
                                 "no jetseg metadata (plain model: CPU pre/post path)"))
    if info.classes:
        print("classes:   {}".format(", ".join(info.classes)))
    for k, v in sorted(info.extra.items()):
        print("{:<10} {}".format(k + ":", v))
    return 0


def cmd_bench(args):
    from .bench import run_bench
    seg = segmenter_from_args(args)
    run_bench(seg, args.input, frames=args.frames, repeats=args.repeats,
              soak_frames=args.soak, visualize=args.visualize)
    return 0


def build_parser():
    from . import __version__
    p = argparse.ArgumentParser(prog="jetseg", description="Semantic segmentation for drones "
                                "and robots: export, build, run.")
    p.add_argument("--version", action="version", version="jetseg " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and details")
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("segment", parents=[common], help="segment images, folders or videos",
                       description="Segment an image, a folder, a quoted glob or a video; "
                                   "write overlays, masks, class-id PNGs or a video.")
    add_model_args(s)
    s.add_argument("input", help="image, folder, quoted glob (\"imgs/*.jpg\") or video file")
    s.add_argument("output", nargs="?", help="image, folder, %%d pattern or .mp4/.avi")
    s.set_defaults(func=cmd_segment)

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

    i = sub.add_parser("info", parents=[common], help="print what a model file holds")
    i.add_argument("model")
    i.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    i.set_defaults(func=cmd_info)
    from . import eval_cli, trt_cli
    eval_cli.register(sub, common, add_model_args)
    trt_cli.register(sub, common)
    for name, (_, text) in sorted(DELEGATED.items()):
        sub.add_parser(name, help=text + " (needs the export extra)")
    return p


# Desktop commands that live in jetseg_export (they need torch / onnx): the runtime only
# forwards to them, so a Jetson without torch still runs everything else.
DELEGATED = {
    "export": ("jetseg_export.cli", "PyTorch model -> ONNX with pre/post-processing"),
    "train": ("jetseg_export.train", "train a segmentation net on a labelled dataset"),
}


def _delegate(command, argv):
    import importlib
    module_name = DELEGATED[command][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        sys.stderr.write("jetseg: error: 'jetseg {}' needs the export tools ({}) (fix: pip "
                         "install 'jetseg[export]' on a desktop; Jetsons run exported models "
                         "only)\n".format(command, e))
        return 2
    return module.main(argv, prog="jetseg " + command)


def setup_logging(debug=False, quiet=False, prog="jetseg"):
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(prog + ": %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def run_guarded(parser, func, argv, prog="jetseg"):
    """Parse, run, and turn user-fixable errors into one line + exit code 2."""
    args = parser.parse_args(argv)
    saved = (list(log.handlers), log.level, log.propagate)
    setup_logging(getattr(args, "debug", False), getattr(args, "quiet", False), prog)
    try:
        return func(args)
    except JetsegError as e:
        if args.debug:
            raise
        sys.stderr.write("{}: error: {}\n".format(prog, e))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("{}: interrupted; outputs written so far are complete\n".format(prog))
        return 130
    finally:        # called from Python (tests, scripts): leave logging as it was
        log.handlers[:], log.propagate = saved[0], saved[2]
        log.setLevel(saved[1])          # setLevel, not .level: it clears logging's cache


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    return run_guarded(parser, lambda args: args.func(args), argv)


if __name__ == "__main__":
    sys.exit(main())
