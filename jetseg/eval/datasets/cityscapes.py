"""Cityscapes fine annotations: ``*_gtFine_labelIds.png`` mapped to the 19 train ids.

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Splits: train (2975), val (500); test has no public labels. Label ids not used for
evaluation (unlabeled, ego vehicle, ground, parking, rail track, guard rail, ...) map to 255
(ignored), as in cityscapesScripts' ``labels.py`` (trainId column).
"""
import os

import numpy as np

from jetseg.eval.datasets.base import SegDataset, list_images, need_dir, read_label_file
from jetseg.errors import JetsegError

# (labelId, name, (r, g, b)) of the 19 evaluated classes, in trainId order
CLASSES = [
    (7, "road", (128, 64, 128)), (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)), (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)), (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)), (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)), (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)), (24, "person", (220, 20, 60)), (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)), (27, "truck", (0, 0, 70)), (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)), (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
]
LUT = np.full(256, 255, np.uint8)
for _train_id, (_label_id, _, _) in enumerate(CLASSES):
    LUT[_label_id] = _train_id
SUFFIX_IMG = "_leftImg8bit"
SUFFIX_GT = "_gtFine_labelIds"
LAYOUT = ("ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png and "
          "ROOT/gtFine/<split>/<city>/*_gtFine_labelIds.png")


class Cityscapes(SegDataset):
    format = "cityscapes"

    def __init__(self, root, split="val", skip_bad=False):
        super(Cityscapes, self).__init__(root, split, [c[1] for c in CLASSES],
                                         [c[2] for c in CLASSES], 255, skip_bad)
        root = str(root)
        need_dir(root, "dataset", LAYOUT)
        img_dir = need_dir(os.path.join(root, "leftImg8bit", split),
                           "image ({} split)".format(split), LAYOUT, root)
        gt_dir = need_dir(os.path.join(root, "gtFine", split),
                          "label ({} split)".format(split), LAYOUT, root)
        images = [p for p in list_images(img_dir, recursive=True) if SUFFIX_IMG in p]
        labels = {}
        for p in list_images(gt_dir, recursive=True):
            base = os.path.basename(p)
            if base.endswith(SUFFIX_GT + ".png"):
                labels[base[:-len(SUFFIX_GT + ".png")]] = p
        labels_by_stem = {}
        for p in images:
            key = os.path.basename(p).split(SUFFIX_IMG)[0]
            if key in labels:
                labels_by_stem[os.path.splitext(os.path.basename(p))[0]] = labels[key]
        self._pair(images, labels_by_stem, img_dir, gt_dir, LAYOUT)

    def decode_label(self, i):
        ids = read_label_file(self.items[i][1])
        if ids.ndim != 2:
            raise JetsegError("labelIds image is not single-channel", path=self.items[i][1],
                              fix="use the *_gtFine_labelIds.png files, not *_color.png")
        if ids.dtype != np.uint8:
            ids = np.clip(ids, 0, 255).astype(np.uint8)
        return LUT[ids]
