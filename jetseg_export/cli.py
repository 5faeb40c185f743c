"""``jetseg export``: a PyTorch checkpoint -> one self-describing ONNX for a Jetson.

    jetseg export --arch deeplabv3-mobilenet --num-classes 12 --checkpoint best.pth \\
        --labels classes.txt --colors colors.txt --input-size 480x360 -o engines/camvid.onnx
    jetseg export --arch fcn-alexnet --num-classes 2 --checkpoint sfwa.pth --target trt8.2 \\
        -o engines/sfwa.onnx
    jetseg export --arch deeplabv3-mobilenet ... --precision int8 --calib calib_images/ \\
        -o engines/camvid.int8.onnx
    jetseg export --module mypkg.models:build --checkpoint m.pth --num-classes 5 -o m.onnx
    jetseg export --checkpoint best.pth --frame-size 1280x720 -o engines/camvid.1280x720.onnx
    jetseg export --from engines/camvid.onnx --frame-size 1920x1080 --filter-mode smooth \
        -o engines/camvid.1920x1080.onnx

``jetseg/cli.py`` forwards ``jetseg export ARGS`` to ``main(argv, prog)`` here.
"""
import argparse
import sys
import time

from jetseg.errors import JetsegError, log

from .targets import DEFAULT as DEFAULT_TARGET, TARGETS

ARCH_NAMES = ("fcn-alexnet", "fcn8s-vgg16", "fcn-resnet18", "fcn-resnet50",
              "deeplabv3-mobilenet", "deeplabv3-resnet50", "deeplabv3-resnet101",
              "lraspp-mobilenet", "unet", "fast-scnn")
TARGET_NAMES = tuple(TARGETS)


class _Given(argparse.Action):
    """Stores the value and notes that the flag was given (``args.given``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = tuple(getattr(namespace, "given", ())) + (self.dest,)


def build_parser(prog="jetseg export"):
    from jetseg.cli.common import ArgumentParser     # suggests the closest flag
    p = ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a PyTorch segmentation net to ONNX with jetseg's pre/post-"
                    "processing inside the graph and the model's facts in its metadata; "
                    "checks parity with PyTorch before writing.",
        epilog="targets (each export is checked against the ONNX parser rules of the "
               "TensorRT it serves):\n"
               "  trt8.2       TensorRT 8.2 (Nano, JetPack 4.6) and 8.4 (JetPack 5.0):\n"
               "               opset 13, float32 image in, int32 class map\n"
               "  trt8.5       TensorRT 8.5 (JetPack 5.1): opset 17, uint8 image in, uint8 "
               "class map\n"
               "               (default)\n"
               "  trt8.6       TensorRT 8.6 (JetPack 6.0): as trt8.5\n"
               "  trt10        TensorRT 10.3 (JetPack 6.1 / 6.2): as trt8.5\n"
               "  trt11        TensorRT 11: as trt8.5\n"
               "  onnxruntime  ONNX Runtime anywhere: as trt8.5, any ONNX op\n\n"
               "frame graphs (--frame-size WxH): the graph takes the camera frame itself and\n"
               "shrinks it to --input-size inside (OpenCV's INTER_AREA weights, exact), and\n"
               "gives the class map and overlay at WxH: no resize, argmax or blend on the CPU.\n"
               "One file (and one engine) per camera resolution; jetseg-camera uses\n"
               "MODEL.WxH.onnx beside MODEL.onnx for WxH frames by itself.\n")
    m = p.add_argument_group("network")
    src = m.add_mutually_exclusive_group()
    src.add_argument("--arch", help="one of: " + ", ".join(ARCH_NAMES))
    src.add_argument("--module", metavar="PKG.MOD:BUILD",
                     help="your own nn.Module: a function/class called with num_classes "
                          "(pkg.mod:build or file.py:build)")
    src.add_argument("--from", dest="from_onnx", metavar="MODEL.onnx",
                     help="the net of a jetseg export, for --frame-size (no checkpoint needed)")
    m.add_argument("--num-classes", type=int, help="output classes (default: lines in --labels)")
    m.add_argument("--checkpoint", help="state_dict file (.pth); loaded with weights_only=True")
    m.add_argument("--input-size", help="WxH the net runs at (default: the checkpoint's from "
                   "jetseg train, else 480x360)")
    m.add_argument("--mean", help="normalisation mean, 0..1 scale (default ImageNet's)")
    m.add_argument("--std", help="normalisation std, 0..1 scale (default ImageNet's)")
    m.add_argument("--channel-order", choices=("RGB", "BGR"),
                   help="channel order the net was trained on (default RGB, torchvision)")
    d = p.add_argument_group("model file")
    d.add_argument("-o", "--output", required=True, help="the .onnx to write")
    d.add_argument("--target", default=DEFAULT_TARGET, choices=TARGET_NAMES, action=_Given,
                   help="where it will run (default {}, with --from the model's own; see "
                        "below)".format(DEFAULT_TARGET))
    d.add_argument("--frame-size", metavar="WxH",
                   help="a frame graph for a camera of this resolution (see below)")
    d.add_argument("--filter-mode", default="linear", choices=("point", "linear", "smooth"),
                   help="how a frame graph brings the net's output to the frame: point "
                        "(nearest), linear (blended colours, default) or smooth (scores "
                        "upsampled before the argmax)")
    d.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"),
                   help="fp32 (default); fp16: float16 weights and compute in the graph "
                        "(what strongly typed TensorRT 10/11 builds as FP16); int8: Q/DQ "
                        "from --calib frames")
    d.add_argument("--labels", help="classes.txt, one name a line")
    d.add_argument("--colors", help="colors.txt, 'R G B [A]' a line")
    d.add_argument("--labels-mismatch-ok", action="store_true",
                   help="accept --labels/--colors files with another count than "
                        "--num-classes: missing names become 'class #N', missing colours are "
                        "generated, extra lines are dropped (default: that is an error)")
    d.add_argument("--ignore-class", help="class id or name the argmax never picks (void)")
    d.add_argument("--alpha", type=int, default=150, help="overlay opacity 0-255 (default 150)")
    d.add_argument("--no-overlay", action="store_true", help="no overlay output in the graph")
    d.add_argument("--confidence", action="store_true", help="add a confidence output")
    d.add_argument("--scores", action="store_true", help="also output the raw logits")
    d.add_argument("--classes-dtype", choices=("uint8", "int32", "int64", "float32"),
                   help="class map type (default per target)")
    d.add_argument("--dataset", help="dataset name to record in the metadata")
    d.add_argument("--held-out", metavar="FOLDS.json", help="the folds report of jetseg train "
                   "--folds sequences for this recipe: its mean held-out mIoU, each fold's "
                   "and what they mean go into the metadata (jetseg info shows them)")
    c = p.add_argument_group("checks and INT8")
    c.add_argument("--check-images", metavar="DIR",
                   help="frames for the parity check (default: random frames)")
    c.add_argument("--check-labels", metavar="DIR",
                   help="label PNGs (class id a pixel, same stems) for mIoU in the table")
    c.add_argument("--check-count", type=int, help="frames to check (default 16, random 4)")
    c.add_argument("--calib", metavar="DIR", help="calibration frames for --precision int8")
    c.add_argument("--calib-count", type=int,
                   help="calibration frames used, spread over the folder (default: 32 for "
                        "percentile and entropy, which keep every activation in memory; 100 "
                        "for minmax)")
    c.add_argument("--calib-method", default="percentile", choices=("percentile", "entropy",
                                                                    "minmax"),
                   help="how INT8 ranges are chosen from the calibration frames: percentile "
                        "(default: 99.999%%, clips outliers; within 1 mIoU point of FP32 on "
                        "every held-out CamVid fold, where minmax lost up to 2.6), entropy, or "
                        "minmax (each activation's full range, little memory)")
    g = p.add_argument_group("output")
    g.add_argument("--debug", action="store_true", help="show tracebacks and details")
    g.add_argument("--quiet", "-q", action="store_true", help="only the table and errors")
    return p


def _need_torch():
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise JetsegError("jetseg export needs PyTorch and onnx ({})".format(e),
                          fix="pip install 'jetseg[export]' on a desktop")


def run(args):
    from jetseg.core.labels import check_count, read_colors, read_labels
    from jetseg.core.modelinfo import parse_triple

    frame_size = _size(args.frame_size, "--frame-size", "1280x720") if args.frame_size \
        else None
    if args.from_onnx:
        return _run_from_onnx(args, frame_size)

    facts = _checkpoint_facts(args.checkpoint) if args.checkpoint else {}
    if facts:       # a jetseg train checkpoint: its facts are the defaults, flags still win
        log.info("checkpoint from jetseg train: %s, %d classes, %s, epoch %s, val mIoU %s",
                 facts.get("arch"), facts.get("num_classes", 0), "x".join(
                     str(v) for v in facts.get("input_size", [])), facts.get("epoch"),
                 "{:.1%}".format(facts["miou"]) if "miou" in facts else "?")
        if not args.arch and not args.module:
            args.arch = facts.get("arch")
        args.input_size = args.input_size or "x".join(str(v) for v in facts["input_size"])
        args.mean = args.mean or facts.get("mean")
        args.std = args.std or facts.get("std")
        args.channel_order = args.channel_order or facts.get("channel_order")
        args.dataset = args.dataset or facts.get("dataset")
    if not args.arch and not args.module:
        raise JetsegError("which network is it?", fix="pass --arch NAME or --module "
                          "pkg.mod:build (a checkpoint from jetseg train knows its own)")
    args.channel_order = args.channel_order or "RGB"
    width, height = _input_size(args.input_size or "480x360")
    if frame_size and (frame_size[0] < width or frame_size[1] < height):
        raise JetsegError("--frame-size {}x{} is smaller than the net's input {}x{}".format(
            frame_size[0], frame_size[1], width, height),
            fix="a frame graph shrinks the camera frame to the net's size: give the camera's "
                "resolution, or a smaller --input-size")
    mean = parse_triple(args.mean, "mean")
    std = parse_triple(args.std, "std")
    names = read_labels(args.labels) if args.labels else facts.get("classes")
    colors = read_colors(args.colors) if args.colors else (
        [tuple(c) for c in facts["colors"]] if facts.get("colors") else None)
    num_classes = args.num_classes or (len(names) if names else None)
    if not num_classes:
        raise JetsegError("how many classes does the net output?",
                          fix="pass --num-classes N or --labels classes.txt")
    if args.labels:
        names = check_count(names, num_classes, args.labels, "labels", args.labels_mismatch_ok)
    if args.colors:
        colors = check_count(colors, num_classes, args.colors, "colors",
                             args.labels_mismatch_ok)
    if not 0 <= args.alpha <= 255:
        raise JetsegError("--alpha {} is outside 0-255".format(args.alpha),
                          fix="give an opacity from 0 (clear) to 255 (opaque)")
    ignore = _class_id(args.ignore_class, names, num_classes)
    if args.precision == "int8" and not args.calib:
        raise JetsegError("--precision int8 needs calibration images",
                          fix="pass --calib DIR with a few dozen frames like the ones it will "
                              "see (e.g. 100 training images)")
    from .parity import list_images
    if args.calib:
        list_images(args.calib, "--calib")
    if args.check_images:
        list_images(args.check_images)
    if args.check_labels and not args.check_images:
        raise JetsegError("--check-labels needs --check-images",
                          fix="give the frames the label PNGs belong to with --check-images")
    extra = _training_facts(facts)
    if args.held_out:               # read and checked now, not after a long export
        from .folds import heldout_facts
        extra["heldout"] = heldout_facts(args.held_out, arch=args.arch or args.module,
                                         epochs=extra.get("trained_epochs"))
    _need_torch()
    from . import exporter
    from .progress import Progress
    Progress.enabled = not args.quiet
    t0 = time.perf_counter()
    net = exporter.build_net(arch=args.arch, module=args.module, num_classes=num_classes,
                             checkpoint=args.checkpoint)
    res = exporter.export_onnx(
        net, args.output, num_classes, classes=names, colors=colors, width=width,
        height=height, target=args.target, precision=args.precision, mean=mean, std=std,
        norm_order=args.channel_order, ignore_class=ignore, alpha=args.alpha,
        overlay=not args.no_overlay, confidence=args.confidence, scores=args.scores,
        classes_dtype=args.classes_dtype, check_images=args.check_images,
        check_labels=args.check_labels, check_count=args.check_count, calib=args.calib,
        calib_count=args.calib_count, calib_method=args.calib_method,
        arch=args.arch or args.module, dataset=args.dataset,
        extra_facts=extra, frame_size=frame_size,
        filter_mode=args.filter_mode)
    print(res.table)
    if res.frame:
        print(res.frame)
    if not args.quiet:
        print("wrote {} ({}, {}, {}) in {:.1f}s".format(
            res.path, args.target, args.precision, exporter.describe(res.model),
            time.perf_counter() - t0))
    return 0


def _run_from_onnx(args, frame_size):
    """``--from MODEL.onnx --frame-size WxH``: the frame graph of an existing export."""
    if not frame_size:
        raise JetsegError("--from makes frame graphs: it needs --frame-size",
                          fix="add --frame-size WxH (the camera's resolution)")
    flags = (("--checkpoint", args.checkpoint), ("--precision", args.precision != "fp32"),
             ("--calib", args.calib), ("--labels", args.labels), ("--colors", args.colors),
             ("--input-size", args.input_size), ("--held-out", args.held_out))
    given = [f for f, v in flags if v]
    if given:
        raise JetsegError("{} cannot change a model taken --from an export".format(
            ", ".join(given)), fix="leave them out (the model keeps its own), or export from "
                                   "the checkpoint with --frame-size")
    if args.check_images:
        from .parity import list_images
        list_images(args.check_images)
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise JetsegError("jetseg export --from needs onnx ({})".format(e),
                          fix="pip install 'jetseg[export]'")
    from .framegraph import export_from_onnx
    t0 = time.perf_counter()
    target = args.target if "target" in getattr(args, "given", ()) else None
    frame, summary = export_from_onnx(args.from_onnx, args.output, frame_size,
                                      args.filter_mode, target, args.check_images,
                                      args.check_count)
    print(summary)
    if not args.quiet:
        from .exporter import describe
        print("wrote {} ({}) in {:.1f}s".format(args.output, describe(frame),
                                                time.perf_counter() - t0))
    return 0


def _checkpoint_facts(path):
    _need_torch()
    from .archs import checkpoint_facts
    return checkpoint_facts(path)


def _training_facts(facts):
    out = {}
    if "miou" in facts:
        from jetseg.eval.metrics import miou_facts
        out.update(miou_facts(facts["miou"], key="val_miou"))
    if "epoch" in facts:
        out["trained_epochs"] = int(facts["epoch"]) + 1
    return out


def _input_size(text):
    return _size(text, "--input-size", "480x360")


def _size(text, flag, example):
    from jetseg.core.modelinfo import parse_size
    try:
        return parse_size(text)
    except JetsegError:
        raise JetsegError("{} {!r} is not WIDTHxHEIGHT".format(flag, text),
                          fix="write e.g. {} {} (width first)".format(flag, example))


def _class_id(value, names, num_classes):
    if value is None or value == "":
        return None
    if not value.lstrip("-").isdigit():
        if not names or value not in names:
            raise JetsegError("--ignore-class {!r} is not a class name{}".format(
                value, "" if names else " (no --labels given)"),
                fix="give a class id or a name from --labels")
        return names.index(value)
    v = int(value)
    if not 0 <= v < num_classes:
        raise JetsegError("--ignore-class {} is not a class id (0..{})".format(
            v, num_classes - 1), fix="give a valid class id or name")
    return v


def main(argv=None, prog="jetseg export"):
    """jetseg's one error runner (one line + exit 2, ``--debug`` traceback, Ctrl-C 130);
    messages start with "jetseg:", as every runtime command's do."""
    from jetseg.cli.common import run_guarded
    try:
        return run_guarded(build_parser(prog), run, argv, prog="jetseg")
    except SystemExit as e:             # argparse: usage errors exit 2, --help exits 0
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
