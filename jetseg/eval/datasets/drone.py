"""Semantic Drone Dataset (TU Graz ICG): RGB masks + ``class_dict.csv``.

Both published layouts are found, up to 5 folders below ROOT:

    original release (TU Graz)                    Kaggle copy (bulentsiyah)
    training_set/images/*.jpg                     dataset/semantic_drone_dataset/original_images/
    training_set/gt/semantic/label_images/*.png   RGB_color_image_masks/RGB_color_image_masks/
    training_set/gt/semantic/class_dict.csv       class_dict_seg.csv
                                                  (dataset/semantic_drone_dataset/
                                                   label_images_semantic/: grey class ids)

``class_dict.csv`` has a ``name, r, g, b`` header and one row a class (24 rows); the Kaggle
copy's ``class_dict_seg.csv`` has ``id,name,r,g,b`` with ids -1 (unlabeled), 0 (paved-area)
.. 21 (obstacle), 22 (conflicting). Columns are read by their header. RGB masks are coloured
with the table's colours; grey masks (label_images_semantic) hold the row number (0 =
unlabeled .. 23 = conflicting, i.e. id + 1 in the Kaggle table).

Void: the dataset's own README says "the following 22 classes" and lists "unlabeled" then
the 22 real ones, paved-area .. obstacle; "conflicting" is not listed. So rows named
``unlabeled`` or ``conflicting``, and rows with a negative id, are void: their pixels are
ignored (255) and the other 22 classes keep the table's order, which in the Kaggle table is
their id (0..21). Public tutorials differ: the common ones read the table with pandas
(``df['name']``) and train on all 24 rows by row number, unlabeled and conflicting
included; ``void=()`` does the same here. 400 labelled images and no official val split:
``train``/``val`` are a fixed holdout (``val_percent``, chosen by file name), ``all`` is
everything. Layout sources: the dataset's page (tugraz.at/index.php?id=22387)
and the Kaggle copy's file list, as used by public loaders.
"""
import os

import numpy as np

from jetseg.eval.datasets.base import (ColorDecoder, SegDataset, holdout, list_images,
                                        read_label_file, stem_of)
from jetseg.eval.datasets.classfiles import read_class_csv
from jetseg.errors import JetsegError

VOID = ("unlabeled", "conflicting")
IMAGE_DIRS = ("images", "original_images")
MASK_DIRS = ("label_images", "RGB_color_image_masks", "label_images_semantic")  # preferred first
TABLES = ("class_dict.csv", "class_dict_seg.csv")
LAYOUT = ("ROOT/training_set/images/*.jpg + training_set/gt/semantic/label_images/*.png + "
          "class_dict.csv (or Kaggle's dataset/semantic_drone_dataset/original_images/, "
          "RGB_color_image_masks/ or label_images_semantic/, class_dict_seg.csv), "
          "found up to 5 folders below ROOT")


def _walk(root, depth=5):
    """{basename: [paths]} of folders and files up to ``depth`` levels below ``root``."""
    found = {}
    level = [root]
    for _ in range(depth + 1):
        nxt = []
        for d in level:
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                found.setdefault(n, []).append(p)
                if os.path.isdir(p):
                    nxt.append(p)
        level = nxt
    return found


def _find(root):
    found = _walk(root)
    images = [p for n in IMAGE_DIRS for p in found.get(n, []) if os.path.isdir(p)]
    masks = [p for n in MASK_DIRS for p in found.get(n, []) if os.path.isdir(p)]
    tables = [p for n in TABLES for p in found.get(n, []) if os.path.isfile(p)]
    if not images or not masks:
        return None
    mask_dir = masks[0]
    # Kaggle nests RGB_color_image_masks/RGB_color_image_masks/: take the one with files
    for m in masks:
        if os.path.basename(m) == os.path.basename(mask_dir) and list_images(m):
            mask_dir = m
            break
    if not tables:
        raise JetsegError("no class_dict.csv found for {}".format(mask_dir), path=root,
                          fix="put the dataset's class_dict.csv beside it; expected layout: "
                              + LAYOUT)
    return images[0], mask_dir, tables[0]


class SemanticDrone(SegDataset):
    format = "drone"

    def __init__(self, root, split="val", skip_bad=False, val_percent=20, void=VOID,
                 strict_colors=False):
        root = str(root)
        if not os.path.isdir(root):
            raise JetsegError("dataset folder not found", path=root,
                              fix="expected layout: " + LAYOUT)
        found = _find(root)
        if found is None:
            raise JetsegError("no Semantic Drone Dataset image and mask folders here",
                              path=root, fix="expected layout: " + LAYOUT)
        img_dir, mask_dir, csv_path = found
        names, colors, ids = read_class_csv(csv_path)
        void = set(v.lower() for v in void)
        keep = [i for i, n in enumerate(names) if n.lower() not in void and
                not (void and ids is not None and ids[i] < 0)]
        super(SemanticDrone, self).__init__(root, split, [names[i] for i in keep],
                                            [colors[i] for i in keep], 255, skip_bad)
        self.class_table = csv_path
        # void colours map to 255 explicitly, so they are not reported as unknown
        ids = [keep.index(i) if i in keep else 255 for i in range(len(names))]
        self.decoder = ColorDecoder(colors, ids, 255, source=csv_path, strict=strict_colors)
        self.id_lut = np.full(256, 255, np.uint8)
        self.id_lut[:len(ids)] = ids
        labels = dict((stem_of(p), p) for p in list_images(mask_dir))
        self._pair(list_images(img_dir), labels, img_dir, mask_dir, LAYOUT)
        self.items = holdout(self.items, split, val_percent, layout=LAYOUT, root=root)

    def decode_label(self, i):
        path = self.items[i][1]
        lab = read_label_file(path)
        if lab.ndim == 2:                  # label_images_semantic: ids in the table's order
            return self.id_lut[np.minimum(lab, 255)]
        return self.decoder(lab, path)
