"""NVIDIA DIGITS segmentation folders, the layout of NVIDIA's aerial drone FPV set.

jetson-inference's DIGITS tutorial (docs/segnet-dataset.md) imports
NVIDIA-Aerial-Drone-Dataset/FPV/SFWA as a DIGITS "Segmentation" dataset:

    ROOT/720p/images/*.png|jpg      feature images
    ROOT/720p/labels/*.png          label images, same file name (the extension may differ)
    ROOT/fpv-labels.txt             class names, line i = class i-1 (DIGITS "Class labels")
    ROOT/fpv-training-colors.txt    "R G B" a line, line i = colour of class i-1
                                    (DIGITS "Color map: From text file")

What is accepted (DIGITS' own rules, digits/extensions/data/imageSegmentation):
- ``images/`` and ``labels/`` directly under ROOT or one folder below it (``720p/``);
  ``train/`` and ``val/`` folders each holding ``images/`` + ``labels/`` are DIGITS'
  "separate validation images" option and give the splits directly.
- class names: ``*labels*.txt`` / ``classes.txt`` beside the folders (or ``labels_file``).
- RGB label images need the colour file (``*colors*.txt``, a training one preferred over a
  deploy one, or ``colors_file``); unknown colours are ignored with one warning.
  Single-channel (grey) label images hold class ids directly; indexed (paletted) PNGs are
  read through their own palette (DIGITS' "From label image").
- Without train/val folders DIGITS splits at random ("% for validation"); jetseg keeps a
  fixed ``val_percent`` holdout chosen by file name, ``all`` is everything.
The contents of fpv-labels.txt / colour files were not available to check; nothing here
depends on their particular classes.
"""
import glob
import os

from jetseg.eval.datasets.base import (ColorDecoder, SegDataset, holdout, list_images,
                                        read_label_file, stem_of)
from jetseg.eval.datasets.classfiles import png_palette, read_class_colors
from jetseg.errors import JetsegError
from jetseg.core.labels import generated_palette, read_labels

LAYOUT = ("ROOT/[720p/]images/*, ROOT/[720p/]labels/* (same names), ROOT/*labels*.txt "
          "(class names) and ROOT/*colors*.txt ('R G B' a class) for RGB label images")


def _pick(root, patterns, prefer=None):
    hits = []
    for pat in patterns:
        for d in (root, os.path.dirname(root)):
            hits.extend(sorted(glob.glob(os.path.join(d, pat))))
    if prefer:
        hits.sort(key=lambda p: 0 if prefer in os.path.basename(p) else 1)
    return hits[0] if hits else None


def _folders(root, split):
    """(images, labels, split already applied) for ROOT."""
    if os.path.isdir(os.path.join(root, "train", "images")):
        d = os.path.join(root, {"training": "train", "validation": "val"}.get(split, split))
        if not os.path.isdir(os.path.join(d, "images")):
            raise JetsegError("split {!r} not found ({} has no images/ folder)".format(
                split, d), path=root, fix="use train or val; expected layout: " + LAYOUT)
        return os.path.join(d, "images"), os.path.join(d, "labels"), True
    for base in [root] + sorted(os.path.join(root, d) for d in os.listdir(root)):
        if os.path.isdir(os.path.join(base, "images")) and \
                os.path.isdir(os.path.join(base, "labels")):
            return os.path.join(base, "images"), os.path.join(base, "labels"), False
    raise JetsegError("no images/ and labels/ folders found", path=root,
                      fix="expected layout: " + LAYOUT)


class Digits(SegDataset):
    format = "digits"

    def __init__(self, root, split="val", skip_bad=False, labels_file=None, colors_file=None,
                 val_percent=10, strict_colors=False):
        root = str(root)
        if not os.path.isdir(root):
            raise JetsegError("dataset folder not found", path=root,
                              fix="expected layout: " + LAYOUT)
        img_dir, lab_dir, split_done = _folders(root, split)
        if not os.path.isdir(lab_dir):
            raise JetsegError("label folder {} not found".format(lab_dir), path=root,
                              fix="expected layout: " + LAYOUT)
        labels_file = labels_file or _pick(root, ("*labels*.txt", "classes.txt"))
        colors_file = colors_file or _pick(root, ("*colors*.txt", "*colours*.txt"),
                                           prefer="train")
        colors = read_class_colors(colors_file) if colors_file else None
        names = read_labels(labels_file) if labels_file else None
        labels = dict((stem_of(p), p) for p in list_images(lab_dir))
        first = sorted(labels.values())[:1]
        palette = png_palette(first[0]) if first and not colors else None
        if names is None and colors is None and palette is None:
            raise JetsegError("no class list found (a *labels*.txt beside images/ and "
                              "labels/)", path=root, fix="pass labels_file / put the class "
                              "names file in the dataset folder; expected layout: " + LAYOUT)
        if names is None:
            n = len(colors) if colors else len(palette)
            names = ["class #{}".format(i) for i in range(n)]
        if colors is not None and len(colors) < len(names):
            raise JetsegError("{} lists {} colours for {} classes".format(
                colors_file, len(colors), len(names)), path=colors_file,
                fix="give one 'R G B' line per class in {}".format(labels_file))
        shown = (colors or palette or generated_palette(len(names)))[:len(names)]
        super(Digits, self).__init__(root, split, names, shown, 255, skip_bad)
        self.labels_file, self.colors_file = labels_file, colors_file
        self.decoder = None
        if colors is not None:
            self.decoder = ColorDecoder(colors[:len(names)], None, 255, source=colors_file,
                                        strict=strict_colors)
        elif palette is not None:
            cols, ids = [], []
            for i, c in enumerate(palette[:len(names)]):
                if c not in cols:           # unused palette entries repeat: first one wins
                    cols.append(c)
                    ids.append(i)
            self.decoder = ColorDecoder(cols, ids, 255, source=first[0] + " (palette)",
                                        strict=strict_colors)
        self._pair(list_images(img_dir), labels, img_dir, lab_dir, LAYOUT)
        if not split_done:
            self.items = holdout(self.items, split, val_percent, layout=LAYOUT, root=root)

    def decode_label(self, i):
        path = self.items[i][1]
        lab = read_label_file(path)
        if lab.ndim == 2:
            return lab                      # grey: class ids as they are
        if self.decoder is None:
            raise JetsegError("colour label image but no colour map", path=path,
                              fix="put a *colors*.txt ('R G B' a class) in the dataset folder")
        return self.decoder(lab, path)

