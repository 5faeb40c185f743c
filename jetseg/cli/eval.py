"""The ``eval`` subcommand; ``jetseg.cli`` calls ``register``.

    jetseg eval --model M --dataset DIR [--format auto|camvid|...] [--split val|train,val]
                [--sequence SEQ[,SEQ]] [--compare OTHER.onnx] [--out DIR] [--limit N]
                [--skip-bad]

Prints the per-class IoU table (with deltas when comparing), writes eval.json, iou.png and
confusion.png (confusion_2.png for the compared model) into --out (default
runs/eval-<model>-<split>/) and says where. ``--split train,val --sequence 0006R0`` scores
the frames of one recording (a sequence fold's held-out frames); the header and eval.json
name the splits, the sequences and the frame count.
"""
import os

from jetseg.errors import JetsegError, log

FORMAT_CHOICES = ("auto", "camvid", "digits", "kitti-road", "coco", "cityscapes", "drone")


def register(subparsers, common_parent):
    from jetseg.cli.common import add_model_args
    e = subparsers.add_parser(
        "eval", parents=[common_parent], help="measure mIoU of a model on a labelled dataset",
        description="Run a model over a labelled dataset split and report per-class IoU, "
                    "mIoU (mean over the classes present in the ground truth), pixel "
                    "accuracy and mean class accuracy; write eval.json, a per-class IoU "
                    "chart and a confusion-matrix picture. --compare runs a second model "
                    "(e.g. the INT8 export) on the same images and reports the deltas.")
    add_model_args(e, visualisation=False)
    d = e.add_argument_group("dataset")
    d.add_argument("--dataset", required=True, help="dataset folder")
    d.add_argument("--format", default="auto", choices=FORMAT_CHOICES,
                   help="dataset layout (default: guessed from the folder)")
    d.add_argument("--split", default="val",
                   help="split to evaluate (default val); several, comma-separated, are "
                        "pooled with each image once (e.g. train,val)")
    d.add_argument("--sequence", metavar="SEQ[,SEQ]",
                   help="only the frames of these sequences (recordings; camvid: the "
                        "file-name prefix, e.g. 0006R0), e.g. a fold's held-out sequence "
                        "with --split train,val")
    d.add_argument("--categories", help="coco: comma-separated category names or ids")
    d.add_argument("--skip-bad", action="store_true",
                   help="leave out bad samples (missing/mismatched labels) and count them")
    o = e.add_argument_group("evaluation")
    o.add_argument("--compare", metavar="OTHER", help="a second model file to evaluate on "
                   "the same images (same flags), reported side by side with deltas")
    o.add_argument("--out", "-o", help="output folder (default runs/eval-<model>-<split>)")
    o.add_argument("--limit", type=int, help="only the first N samples")
    o.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    e.set_defaults(func=cmd_eval)
    return subparsers


def _open(args):
    from jetseg.eval.selection import open_selection
    options = {"skip_bad": args.skip_bad}
    if args.categories:
        if args.format not in ("coco", "auto"):
            raise JetsegError("--categories is for --format coco", fix="drop --categories")
        options["categories"] = [c for c in args.categories.split(",") if c.strip()]
    return open_selection(args.dataset, args.format, args.split, args.sequence, **options)


def cmd_eval(args):
    from jetseg.cli.common import segmenter_from_args
    from jetseg.eval.evaluate import evaluate
    from jetseg.eval.report import format_table, write_report
    if args.limit is not None and args.limit <= 0:
        raise JetsegError("--limit {} must be a positive number of samples".format(args.limit),
                          fix="e.g. --limit 10")
    if args.compare and not os.path.exists(args.compare):
        raise JetsegError("no such file", path=args.compare, fix="check the --compare path")
    dataset = _open(args)
    log.info("%s", dataset.describe())
    models = [args.model] + ([args.compare] if args.compare else [])
    results = []
    progress = not (args.no_progress or getattr(args, "quiet", False))
    for m in models:
        args.model = m
        seg = segmenter_from_args(args)
        try:
            results.append(evaluate(seg, dataset, progress=progress, limit=args.limit,
                                    skip_bad=args.skip_bad))
        finally:
            seg.close()
    args.model = models[0]
    out = args.out or default_out(models[0], args.split, args.sequence)
    paths = write_report(out, results, dataset)
    if not getattr(args, "quiet", False):
        print(dataset.what())
        print(format_table(results))
        print("wrote {}, {}, {}".format(paths["json"], paths["iou"],
                                        ", ".join(paths["confusion"])))
    return 0


def default_out(model, split, sequence=None):
    """runs/eval-<model>-<split>[-<sequence>]: under runs/ (ignored by git), never the
    current folder; several splits or sequences are joined with '+'."""
    from jetseg.eval.selection import split_list
    name = "eval-{}-{}".format(os.path.splitext(os.path.basename(model))[0],
                               "+".join(split_list(split)) or split)
    if sequence:
        name += "-" + "+".join(split_list(sequence))
    return os.path.join("runs", name)
