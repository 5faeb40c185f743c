"""Which frames ``jetseg train`` trains and validates on, and the report over sequence folds.

    jetseg train ... --folds sequences -o runs/folds/      # fold-<SEQ>/ each, then the report
    jetseg train ... --holdout 0006R0 -o runs/h-0006R0/    # one fold
    jetseg train ... --train-split trainval --no-val --epochs 60 -o runs/final/

Frames of one sequence are consecutive video frames, near copies of each other, so a
validation split cut from the sequences the net trained on measures memory, not how it does
on a street it has never seen. ``--holdout`` pools the train and val splits and validates on
whole sequences left out of training; ``--folds sequences`` does that for every sequence in
turn. Sequences come from the dataset reader (``SegDataset.sequence``; CamVid: the file-name
prefix). A fold's figure is its last epoch's (a fixed schedule, no epoch picked on the
held-out frames); the report also gives the mean over folds for every validated epoch, which
is how the number of epochs for the final train + val model is chosen.
"""
import collections
import copy
import json
import math
import os
import time

import numpy as np

from jetseg.errors import JetsegError, log
from jetseg.eval import metrics

TRAINVAL = "trainval"


class Frames(object):
    """Chosen frames of one or more readers of one dataset, read as one dataset (what
    training, class weights and validation use): ``len``, ``[i] -> (image, label)``,
    ``names``, ``colors``, ``ignore_index``, ``paths(i)``, ``sequence(i)``."""

    def __init__(self, like, parts, held=None):
        self.parts = list(parts)                # [(reader, index in that reader)]
        self.names, self.colors = list(like.names), list(like.colors)
        self.ignore_index, self.root, self.format = like.ignore_index, like.root, like.format
        self.held = held

    def __len__(self):
        return len(self.parts)

    def __getitem__(self, i):
        ds, k = self.parts[i]
        return ds[k]

    def paths(self, i):
        ds, k = self.parts[i]
        return ds.paths(k)

    def sequence(self, i):
        """The reader's ``sequence(i)`` where it has sequences (``has_sequences``), else None."""
        ds, k = self.parts[i]
        return ds.sequence(k) if getattr(ds, "has_sequences", False) else None

    def subset(self, indices, held=None):
        return Frames(self, [self.parts[i] for i in indices], held)


def pooled(readers):
    """All frames of ``readers`` (e.g. the train and val splits), each image once."""
    from jetseg.eval.selection import pool_parts
    return Frames(readers[0], pool_parts(readers))


def _reader(args, split):
    from jetseg.eval.datasets import open_dataset
    ds = open_dataset(args.dataset, args.format, split, skip_bad=args.skip_bad)
    ds.validate()           # every file read once now, not mid-epoch in a worker
    return ds


def open_pool(args):
    """The train split and ``--val-split`` pooled (what sequence folds are cut from)."""
    return pooled([_reader(args, "train"), _reader(args, args.val_split)])


def check_args(args):
    """Flags that cannot go together: one line, exit 2."""
    pick = "--holdout" if args.holdout else "--folds" if args.folds else None
    if pick and args.no_val:
        raise JetsegError("{} validates on held-out sequences; --no-val leaves nothing to "
                          "report".format(pick), fix="drop --no-val (or " + pick + ")")
    if pick and args.train_split != "train":
        raise JetsegError("{} pools the train and --val-split frames itself; --train-split {} "
                          "does not apply".format(pick, args.train_split),
                          fix="drop --train-split")
    if args.holdout and args.folds:
        raise JetsegError("--holdout and --folds both choose the validation frames",
                          fix="give one: --holdout SEQ for one fold, --folds sequences for all")
    if args.train_split == TRAINVAL and not args.no_val:
        raise JetsegError("--train-split trainval trains on the --val-split frames too, so "
                          "validating on them means nothing",
                          fix="add --no-val (train the fixed --epochs chosen with --folds)")
    if args.val_every < 1:
        raise JetsegError("--val-every must be 1 or more", fix="e.g. --val-every 5")


def open_frames(args):
    """(train, val) for ``args``: readers of the named splits, or ``Frames`` for
    ``--holdout`` / ``--train-split trainval``; val is None with ``--no-val``."""
    check_args(args)
    if args.holdout:
        held = [s.strip() for s in args.holdout.split(",") if s.strip()]
        return holdout(open_pool(args), held)
    if args.train_split == TRAINVAL:
        return pooled([_reader(args, "train"), _reader(args, args.val_split)]), None
    train = _reader(args, args.train_split)
    return train, (None if args.no_val else _reader(args, args.val_split))


def sequences(frames):
    """Every frame's sequence name; a JetsegError where the format has none."""
    for ds in set(ds for ds, _ in frames.parts):
        if not getattr(ds, "has_sequences", False):
            raise JetsegError(
                "--holdout and --folds need frames grouped into sequences (recordings), and "
                "the {} format has none".format(ds.format), path=ds.root,
                fix="use a format whose frames name their sequence (camvid: the file-name "
                    "prefix, 0016E5 in 0016E5_07959.png), or validate on --val-split")
    seqs = [frames.sequence(i) for i in range(len(frames))]
    missing = [frames.paths(i)[0] for i, s in enumerate(seqs) if s is None]
    if missing:
        raise JetsegError("{} of {} frames name no sequence (first: {})".format(
            len(missing), len(seqs), missing[0]), path=frames.root,
            fix="name frames SEQUENCE_FRAME.png as CamVid does (0016E5_07959.png)")
    return seqs


def describe(counts):
    return ", ".join("{} {}".format(s, n) for s, n in sorted(counts.items()))


def holdout(pool, held):
    """(train, val) ``Frames``: val = the frames of the sequences in ``held``."""
    seqs = sequences(pool)
    counts = collections.Counter(seqs)
    unknown = [h for h in held if h not in counts]
    if unknown or not held:
        raise JetsegError("no sequence {} here; the sequences (frames) are: {}".format(
            ", ".join(unknown) or "given", describe(counts)), path=pool.root,
            fix="hold out one of those, e.g. --holdout {}".format(min(counts)))
    val = [i for i, s in enumerate(seqs) if s in held]
    train = [i for i, s in enumerate(seqs) if s not in held]
    if not train:
        raise JetsegError("holding out {} leaves no frames to train on (the sequences here: "
                          "{})".format(", ".join(held), describe(counts)), path=pool.root,
                          fix="keep at least one sequence for training")
    return pool.subset(train, held), pool.subset(val, held)


def write_frames(folder, train, val):
    """frames.json: the image files (and their sequences) the run trains and validates on."""
    from jetseg.files import write_atomic

    def listing(frames):
        if frames is None:
            return None
        seqs = [frames.sequence(i) for i in range(len(frames))]
        return {"frames": len(frames), "sequences": dict(collections.Counter(
            s for s in seqs if s is not None)),
                "images": [frames.paths(i)[0] for i in range(len(frames))]}

    d = {"holdout": getattr(train, "held", None), "train": listing(train), "val": listing(val)}
    write_atomic(os.path.join(folder, "frames.json"),
                 (json.dumps(d, indent=1) + "\n").encode("utf-8"))


# ---- every fold in turn ------------------------------------------------------------------
def run_folds(args, train_fn, read_state):
    """Hold out each sequence in turn into OUTPUT/fold-<SEQ>/ (``train_fn(args, data)``),
    skipping folds already complete with ``--resume``; the report after every fold."""
    check_args(args)
    pool = open_pool(args)
    order = sorted(set(sequences(pool)))
    plan = [(seq, holdout(pool, [seq])) for seq in order]        # every fold checked first
    done = []
    for k, (seq, (train, val)) in enumerate(plan):
        out = os.path.join(args.output, "fold-" + seq)
        state = read_state(os.path.join(out, "last.pth")) if args.resume else None
        print("fold {}/{}: hold out {} ({} frames); train on {} frames ({}) -> {}".format(
            k + 1, len(plan), seq, len(val), len(train),
            describe(collections.Counter(train.sequence(i) for i in range(len(train)))), out))
        if state is None or state["epoch"] + 1 < args.epochs:
            sub = copy.copy(args)
            sub.output, sub.holdout, sub.folds = out, seq, None
            sub.resume = state is not None
            sub.fold_label = "fold {}/{} ({}) ".format(k + 1, len(plan), seq)
            train_fn(sub, (train, val))
            state = read_state(os.path.join(out, "last.pth"))
        else:
            print("  complete ({} epochs), not trained again".format(state["epoch"] + 1))
        done.append(fold_result(seq, state, len(train), len(val)))
        paths = write_report(args.output, done, pool, len(plan), args)
    print(format_table(done, pool.names))
    print("report: {}".format(", ".join(paths)))
    return mean_of(done)["miou"]


def fold_result(seq, state, n_train, n_val):
    names = state["classes"]
    conf = np.asarray(state["confusion"], np.int64)
    rows = [r for r in state["log"] if r.get("miou") is not None]
    best = max(rows, key=lambda r: r["miou"]) if rows else None
    return {"holdout": seq, "train_frames": n_train, "val_frames": n_val,
            "epoch": int(state["confusion_epoch"]) + 1, "miou": float(metrics.miou(conf)),
            "pixel_accuracy": float(metrics.pixel_accuracy(conf)),
            "per_class_iou": dict(zip(names, (metrics.nan_to_none(float(v))
                                              for v in metrics.per_class_iou(conf)))),
            "best_epoch": best and best["epoch"] + 1, "best_miou": best and best["miou"],
            "miou_by_epoch": dict((r["epoch"] + 1, r["miou"]) for r in rows),
            "confusion": conf.tolist()}


def _nanmean(values):
    v = [x for x in values if x is not None and not math.isnan(x)]
    return sum(v) / len(v) if v else None


def mean_of(done):
    names = list(done[0]["per_class_iou"])
    per = dict((n, _nanmean([f["per_class_iou"][n] for f in done])) for n in names)
    scored = [(v, n) for n, v in per.items() if v is not None]
    common = sorted(set.intersection(*[set(f["miou_by_epoch"]) for f in done]))
    by_epoch = dict((e, _nanmean([f["miou_by_epoch"][e] for f in done])) for e in common)
    peak = max(by_epoch, key=by_epoch.get) if by_epoch else None
    return {"miou": _nanmean([f["miou"] for f in done]), "per_class_iou": per,
            "weakest_class": min(scored)[1] if scored else None,
            "weakest_iou": min(scored)[0] if scored else None,
            "miou_by_epoch": by_epoch, "peak_epoch": peak,
            "peak_miou": by_epoch[peak] if peak else None}


def _pct(v):
    return "     -" if v is None else "{:6.1f}".format(100.0 * v)


def format_table(done, names):
    """Per-class IoU (%) of each fold (columns: the held-out sequence) and their mean."""
    mean = mean_of(done)
    w = max(10, max(len(n) for n in names))
    cols = [f["holdout"][:8] for f in done] + ["mean"]
    lines = ["{:<{w}}".format("held out", w=w) + "".join("  {:>8}".format(c) for c in cols)]
    for n in names:
        lines.append("{:<{w}}".format(n, w=w) + "".join(
            "  {:>8}".format(_pct(v)) for v in [f["per_class_iou"][n] for f in done] +
            [mean["per_class_iou"][n]]))
    lines.append("-" * len(lines[0]))
    lines.append("{:<{w}}".format("mIoU", w=w) + "".join(
        "  {:>8}".format(_pct(v)) for v in [f["miou"] for f in done] + [mean["miou"]]))
    lines.append("{:<{w}}".format("val frames", w=w) + "".join(
        "  {:>8}".format(f["val_frames"]) for f in done))
    lines.append("{:<{w}}".format("at epoch", w=w) + "".join(
        "  {:>8}".format(f["epoch"]) for f in done))
    if mean["peak_epoch"]:
        lines.append("mean over folds peaks at epoch {} ({:.1f}%); weakest class {} "
                     "({:.1f}%)".format(mean["peak_epoch"], 100 * mean["peak_miou"],
                                        mean["weakest_class"], 100 * mean["weakest_iou"]))
    return "\n".join(lines)


class _Series(object):
    """What ``draw_iou_chart`` reads of a result: names, model, miou, pixel accuracy and
    per-class IoU."""

    def __init__(self, names, label, miou, pixel_accuracy, ious):
        self.names, self.model, self.miou = names, label, miou
        self.pixel_accuracy = float("nan") if pixel_accuracy is None else pixel_accuracy
        self._ious = np.array([float("nan") if v is None else v for v in ious])

    def per_class_iou(self):
        return self._ious


def write_report(folder, done, pool, total, args):
    """folds.json, folds.txt (the table) and folds.png (per-class IoU bars: one per fold and
    the mean), rewritten after every fold."""
    from jetseg.eval.report import draw_iou_chart
    from jetseg.files import write_atomic, write_image
    names = pool.names
    mean = mean_of(done)
    d = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "complete": len(done) == total, "folds_done": len(done), "folds": total,
         "dataset": {"root": pool.root, "format": pool.format, "frames": len(pool),
                     "splits": ["train", args.val_split]},
         "recipe": dict((k, getattr(args, k)) for k in (
             "arch", "input_size", "epochs", "batch_size", "lr", "optimizer", "schedule",
             "class_weights", "scale", "jitter", "seed")),
         "figure": "each fold: its last epoch (fixed schedule); mean: mean over folds",
         "miou_definition": metrics.MIOU_DEFINITION, "mean": mean, "fold_results": done}
    paths = [os.path.join(folder, n) for n in ("folds.json", "folds.txt", "folds.png")]
    write_atomic(paths[0], (json.dumps(d, indent=1) + "\n").encode("utf-8"))
    write_atomic(paths[1], (format_table(done, names) + "\n").encode("utf-8"))
    series = [_Series(names, "hold out {} (epoch {})".format(f["holdout"], f["epoch"]),
                      f["miou"], f["pixel_accuracy"], [f["per_class_iou"][n] for n in names])
              for f in done]
    series.append(_Series(names, "mean of {} of {} folds".format(len(done), total),
                          mean["miou"], _nanmean([f["pixel_accuracy"] for f in done]),
                          [mean["per_class_iou"][n] for n in names]))
    write_image(paths[2], draw_iou_chart(series, pool.colors))
    return paths


def heldout_facts(path, arch=None, epochs=None):
    """Model metadata (``jetseg.heldout``) from a complete ``folds.json``: the mean held-out
    mIoU over the folds, each fold's, the per-class means, the recipe, and what the figure
    means. ``arch``/``epochs`` of the model being exported: a recipe that differs is said
    in the facts and in a warning (the figure belongs to the recipe, not to any one file)."""
    fix = "give the folds.json that jetseg train --folds sequences wrote (OUTPUT/folds.json)"
    try:
        with open(path) as f:
            d = json.load(f)
        mean, folds, recipe = d["mean"], d["fold_results"], d["recipe"]
    except (IOError, OSError) as e:
        raise JetsegError("cannot read the folds report ({})".format(e.strerror or e),
                          path=path, fix=fix)
    except (ValueError, KeyError, TypeError):
        raise JetsegError("not a folds report of jetseg train", path=path, fix=fix)
    if not d.get("complete"):
        raise JetsegError("the folds report is incomplete ({} of {} folds)".format(
            d.get("folds_done"), d.get("folds")), path=path,
            fix="finish the folds: the same jetseg train command with --resume")
    r4 = lambda v: None if v is None else round(float(v), 4)          # noqa: E731
    facts = {
        "miou": r4(mean["miou"]),
        "folds": dict((f["holdout"], r4(f["miou"])) for f in folds),
        "per_class_iou": dict((k, r4(v)) for k, v in mean["per_class_iou"].items()),
        "weakest_class": mean.get("weakest_class"),
        "recipe": recipe,
        "meaning": "mean over {} folds of the mIoU on a whole sequence left out of training "
                   "(each fold's last epoch, a fixed schedule); each fold trained this recipe "
                   "on the other sequences. It estimates how a model of this recipe does on "
                   "streets it has never seen; this file's own training may have seen every "
                   "sequence".format(len(folds)),
        "miou_definition": d.get("miou_definition", metrics.MIOU_DEFINITION),
    }
    differs = []
    if arch and recipe.get("arch") and recipe["arch"] != arch:
        differs.append("arch {} (folds) vs {} (this model)".format(recipe["arch"], arch))
    if epochs and recipe.get("epochs") and int(recipe["epochs"]) != int(epochs):
        differs.append("{} epochs (folds) vs {} (this model)".format(recipe["epochs"], epochs))
    if differs:
        facts["recipe_differs"] = "; ".join(differs)
        log.warning("%s: the held-out figure was measured on another recipe: %s", path,
                    facts["recipe_differs"])
    return facts
