"""A sky/ground dataset in NVIDIA's DIGITS layout, made from CamVid's labels: the seed for the
aerial flow of NVIDIA's DIGITS / jetson-inference tutorial (FCN-AlexNet on FPV sky/ground).

    python3 -m jetseg_export.aerial build ../shared/datasets/camvid runs/aerial-data
    jetseg train --arch fcn-alexnet --format digits --dataset runs/aerial-data ...
    python3 -m jetseg_export.aerial horizon MODEL.onnx ../shared/samples/aerial/*.png -o DIR

NVIDIA's aerial set (NVIDIA-Aerial-Drone-Dataset/FPV/SFWA, imported into DIGITS as a
"Segmentation" dataset: jetson-inference docs/segnet-dataset.md) has ``720p/images/`` and
``720p/labels/`` (same file names; RGB label images), a class-label file ``fpv-labels.txt``
(one name a line, line i = class i-1) and a colour file ``fpv-training-colors.txt`` ("R G B" a
line; DIGITS "Color map: From text file" reads every integer in order into the palette and
quantises each RGB label image onto it: digits/extensions/data/imageSegmentation/data.py).
This writes the same form, with DIGITS' "separate validation images" folders so that the
validation split is a whole CamVid sequence the net never saw:

    DIR/train/images/*.jpg|png    CamVid frames, copied byte for byte
    DIR/train/labels/*.png        RGB label images, same stem: sky, ground, void (black)
    DIR/val/images, DIR/val/labels    the frames of the held-out sequence(s)
    DIR/fpv-labels.txt            sky, ground
    DIR/fpv-training-colors.txt   their colours, "R G B" a line
    DIR/SOURCE.txt                where the frames came from and how classes were mapped

Class mapping: sky = CamVid Sky; ground = every other CamVid class. The tutorial's two
classes answer "is this free sky or something solid": its labels call all terrain, trees and
structures below the sky line ground, and the horizon estimator fits the line between sky and
everything else, so Building, Tree, Pole, Fence and SignSymbol (which rise above the visual
horizon in a street) are ground too: from the air they are obstacles in front of the sky, not
sky. CamVid's void (unlabelled) pixels stay unlabelled: black (0 0 0), a colour that is not in
the colour file, which jetseg's DIGITS reader ignores (with one warning per run). (DIGITS
itself would quantise black onto its zero-filled palette: remove void pixels before importing
there.)

The folder is written under ``DIR.part`` and renamed to DIR when complete, so an interrupted
build never looks like a finished one.
"""
import argparse
import os
import shutil
import sys

import numpy as np

from jetseg.errors import JetsegError, log

NAMES = ("sky", "ground")
COLORS = ((70, 130, 180), (107, 142, 35))       # Cityscapes' sky and vegetation, R G B
VOID_COLOR = (0, 0, 0)
CAMVID_SKY, CAMVID_VOID = 0, 11
LABELS_FILE, COLORS_FILE = "fpv-labels.txt", "fpv-training-colors.txt"
DEFAULT_VAL = "0006R0"


def sequence_of(path):
    """CamVid's sequence name: the file name up to its first underscore (0016E5_07959)."""
    return os.path.basename(str(path)).split("_", 1)[0]


def sky_ground_lut():
    """CamVid class id -> RGB (256x3): Sky -> sky, classes 1..10 -> ground, the rest void."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = VOID_COLOR
    lut[1:CAMVID_VOID] = COLORS[1]
    lut[CAMVID_SKY] = COLORS[0]
    return lut


def camvid_frames(camvid):
    """[(image, class-id label)] of every CamVid split under ``camvid`` (train, val, test)."""
    from jetseg.eval.datasets.camvid import CamVid
    need = "a CamVid folder (ROOT/train + ROOT/trainannot, ...)"
    if not os.path.isdir(str(camvid)):
        raise JetsegError("CamVid folder not found", path=camvid, fix="give " + need)
    splits = sorted(d for d in os.listdir(str(camvid))
                    if os.path.isdir(os.path.join(str(camvid), d + "annot")))
    if not splits:
        raise JetsegError("no CamVid split here (a folder X with a sibling Xannot)",
                          path=camvid, fix="give " + need)
    items = []
    for split in splits:
        items.extend(CamVid(camvid, split).items)
    return items


def _split_by_sequence(items, val_sequences):
    seqs = sorted(set(sequence_of(img) for img, _ in items))
    unknown = [s for s in val_sequences if s not in seqs]
    if unknown:
        raise JetsegError("sequence {} is not in this CamVid folder".format(
            ", ".join(unknown)), fix="choose --val-sequence from: " + ", ".join(seqs))
    val = [it for it in items if sequence_of(it[0]) in val_sequences]
    train = [it for it in items if sequence_of(it[0]) not in val_sequences]
    if val_sequences and not train:
        raise JetsegError("--val-sequence {} leaves no training frames".format(
            ",".join(val_sequences)), fix="hold out fewer sequences (have: {})".format(
            ", ".join(seqs)))
    return seqs, train, val


def _write_text(path, lines):
    from jetseg.files import write_atomic
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))


def roll_frame(image, ids, deg):
    """``image`` and its class-id label rotated by ``deg`` (counter-clockwise, about the
    centre, same size): a camera banked the other way. Corners that leave the frame are
    black in the image and void in the label (so the loss ignores them)."""
    import cv2
    h, w = ids.shape
    m = cv2.getRotationMatrix2D((w / 2.0 - 0.5, h / 2.0 - 0.5), deg, 1.0)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    ids = cv2.warpAffine(ids, m, (w, h), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=CAMVID_VOID)
    return image, ids


def roll_of(stem, roll):
    """The roll (degrees) a frame gets with ``--roll``: uniform in [-roll, roll], fixed by
    the file name (the same on every machine and every build)."""
    import zlib
    rng = np.random.RandomState(zlib.crc32(stem.encode("utf-8")) & 0x7fffffff)
    return float(rng.uniform(-roll, roll))


def _write(part, items, train, val, val_sequences, seqs, progress, roll=0.0):
    from jetseg.eval.datasets.base import read_label_file, stem_of
    from jetseg.files import read_image, write_atomic, write_image
    from jetseg.progress import Progress
    splits = (("train", train), ("val", val)) if val_sequences else (("", items),)
    lut = sky_ground_lut()
    counts, pixels = {}, np.zeros(3, np.int64)      # sky, ground, void
    bar = Progress(len(items), "aerial labels", enabled=progress)
    for split, group in splits:
        img_dir, lab_dir = (os.path.join(part, split, d) for d in ("images", "labels"))
        for d in (img_dir, lab_dir):
            os.makedirs(d)
        for img, lab in group:
            ids = read_label_file(lab)
            if ids.ndim != 2:
                raise JetsegError("CamVid label is not a class-id image", path=lab,
                                  fix="use the SegNet tutorial's 11-class CamVid labels")
            if roll:
                frame, ids = roll_frame(read_image(img), ids, roll_of(stem_of(img), roll))
                write_image(os.path.join(img_dir, os.path.basename(img)), frame)
            else:
                with open(img, "rb") as f:
                    write_atomic(os.path.join(img_dir, os.path.basename(img)), f.read())
            rgb = lut[ids]
            pixels += [(ids == CAMVID_SKY).sum(), ((ids > 0) & (ids < CAMVID_VOID)).sum(),
                       (ids >= CAMVID_VOID).sum()]
            write_image(os.path.join(lab_dir, stem_of(img) + ".png"), rgb[:, :, ::-1])
            bar.advance()
        counts[split or "all"] = len(group)
    bar.close()
    _write_text(os.path.join(part, LABELS_FILE), NAMES)
    _write_text(os.path.join(part, COLORS_FILE), ["{} {} {}".format(*c) for c in COLORS])
    share = pixels / float(max(1, pixels.sum()))
    _write_text(os.path.join(part, "SOURCE.txt"), [
        "Sky/ground labels made from CamVid (Brostow et al., 2008; the SegNet tutorial's "
        "11-class labels) by python3 -m jetseg_export.aerial, in the DIGITS segmentation "
        "layout of NVIDIA's aerial FPV set.",
        "Research data: do not redistribute.",
        "sky = CamVid Sky; ground = Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, "
        "Car, Pedestrian, Bicyclist; void (black, 0 0 0, not a class) = CamVid void.",
        "sequences: " + ", ".join(seqs),
        "validation sequences: " + (", ".join(val_sequences) or "none (one images/ folder)"),
        "roll: " + ("every frame rotated by a random angle in [-{0:g}, {0:g}] degrees (fixed "
                    "by its name; corners void)".format(roll) if roll else "none (level "
                                                                           "frames)"),
        "frames: " + ", ".join("{} {}".format(k, v) for k, v in sorted(counts.items())),
        "pixels: sky {:.1%}, ground {:.1%}, void {:.1%}".format(*share)])
    return counts, share


def build(camvid, out, val_sequences=(DEFAULT_VAL,), overwrite=False, progress=True,
          roll=0.0):
    """Write the sky/ground DIGITS dataset to ``out``; returns {split: frame count}."""
    out = os.path.abspath(str(out))
    val_sequences = [s for s in val_sequences if s]
    items = camvid_frames(camvid)
    seqs, train, val = _split_by_sequence(items, val_sequences)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise JetsegError("output exists and is not a folder", path=out,
                          fix="choose a folder path for the dataset")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise JetsegError("output folder exists and is not empty", path=out,
                          fix="remove it, choose another folder or pass --overwrite")
    part = out + ".part"
    if os.path.lexists(part):               # what an interrupted build left: never used
        shutil.rmtree(part)
    try:
        counts, share = _write(part, items, train, val, val_sequences, seqs, progress,
                               roll)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.replace(part, out)
    log.info("wrote %s: %s frames (sky %.1f%%, ground %.1f%%, void %.1f%% of pixels)", out,
             " + ".join("{} {}".format(v, k) for k, v in sorted(counts.items())),
             *(100 * share))
    return counts


def horizon_pictures(model, images, out_dir, sky_classes=None, width=None, ext="png"):
    """Segment each image, estimate its horizon (one frame at a time, no filtering) and
    write ``out_dir/NAME.horizon.EXT``: the overlay (``width`` pixels wide if given) with the
    fitted line and its figures. Returns [(image, Horizon)]."""
    import cv2
    from jetseg import Segmenter
    from jetseg.autopilot import estimate_horizon
    from jetseg.files import read_image, write_image
    seg = Segmenter(str(model))
    sky = sky_classes or [n for n in seg.classes if n.lower() == "sky"]
    if not sky:
        raise JetsegError("the model has no class named sky", path=model,
                          fix="name its sky classes with --sky-classes")
    done = []
    for path in images:
        frame = read_image(path)
        res = seg.process(frame)
        h = estimate_horizon(res, sky)
        pic = res.overlay()
        k = float(width) / pic.shape[1] if width else 1.0
        if width:
            pic = cv2.resize(pic, (int(width), int(round(pic.shape[0] * k))),
                             interpolation=cv2.INTER_AREA)
        pic = pic.copy()
        if h.p0 is not None:
            cv2.line(pic, tuple(int(round(v * k)) for v in h.p0),
                     tuple(int(round(v * k)) for v in h.p1), (0, 0, 255), 3, cv2.LINE_AA)
        text = "roll {:+.1f} deg  pitch {:+.3f}  confidence {:.2f}  ({})".format(
            h.roll_deg, h.pitch, h.confidence, h.reason)
        font = 0.7 if pic.shape[1] >= 1000 else 0.45
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1 + (font > 0.5))
        cv2.rectangle(pic, (0, 0), (tw + 20, th + 20), (0, 0, 0), -1)
        cv2.putText(pic, text, (10, th + 10), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                    1 + (font > 0.5), cv2.LINE_AA)
        stem = os.path.splitext(os.path.basename(str(path)))[0]
        write_image(os.path.join(str(out_dir), "{}.horizon.{}".format(stem, ext)), pic)
        print("{}: {}".format(path, text))
        done.append((path, h))
    return done


def add_arguments(p):
    p.add_argument("camvid", help="CamVid folder (SegNet tutorial layout: train/, trainannot/, "
                                  "val/, valannot/, ...)")
    p.add_argument("output", help="dataset folder to write (must not exist or be empty)")
    p.add_argument("--val-sequence", default=DEFAULT_VAL, metavar="SEQ[,SEQ]",
                   help="CamVid sequence(s) held out as val/ (default %(default)s; the others "
                        "are train/); 'none' writes one images/ + labels/ folder")
    p.add_argument("--roll", type=float, default=0.0, metavar="DEG",
                   help="rotate every frame (train and val) by a random angle in [-DEG, DEG] "
                        "(fixed by its name), as a banked drone camera sees the world; CamVid "
                        "is filmed level (default 0: frames as they are)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def cmd_aerial(args):
    vals = [] if args.val_sequence.lower() == "none" else \
        [s.strip() for s in args.val_sequence.split(",") if s.strip()]
    if not 0 <= args.roll <= 180:
        raise JetsegError("--roll {:g} is outside 0..180 degrees".format(args.roll),
                          fix="give the largest roll to simulate, e.g. --roll 30")
    build(args.camvid, args.output, vals, overwrite=args.overwrite,
          progress=not getattr(args, "quiet", False), roll=args.roll)
    return 0


def cmd_horizon(args):
    sky = [c.strip() for c in args.sky_classes.split(",")] if args.sky_classes else None
    horizon_pictures(args.model, args.images, args.output, sky, args.width, args.ext)
    return 0


def register(sub, common, name="aerial-from-camvid"):
    """``jetseg data aerial-from-camvid``: a subcommand for the ``jetseg data`` group."""
    s = sub.add_parser(name, parents=[common],
                       help="sky/ground DIGITS dataset (NVIDIA aerial layout) from CamVid",
                       description=__doc__.split("\n\n")[0])
    add_arguments(s)
    s.set_defaults(func=cmd_aerial)
    return s


def main(argv=None, prog="python3 -m jetseg_export.aerial"):
    from jetseg.cli.common import ArgumentParser, run_guarded
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    register(sub, common, "build")
    h = sub.add_parser("horizon", parents=[common],
                       help="a model's sky/ground overlay and fitted horizon, as pictures")
    h.add_argument("model", help="model file (.onnx)")
    h.add_argument("images", nargs="+", help="image files")
    h.add_argument("-o", "--output", required=True, help="folder for NAME.horizon.EXT")
    h.add_argument("--sky-classes", help="comma-separated sky class names (default: sky)")
    h.add_argument("--width", type=int, help="picture width in pixels (default: the frame's)")
    h.add_argument("--ext", choices=("png", "jpg"), default="png", help="picture type")
    h.set_defaults(func=cmd_horizon)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        p.print_help()
        return 2
    return run_guarded(p, lambda a: a.func(a), argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
