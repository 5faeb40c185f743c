"""KITTI road (data_road): ``gt_image_2/<cat>_road_<id>.png`` colour masks -> road / not road.

    ROOT/training/image_2/<cat>_<id>.png        cat = um, umm, uu
    ROOT/training/gt_image_2/<cat>_road_<id>.png
    (ROOT may also be data_road/training itself; um_lane_* ego-lane masks are not used)

Encoding, as the KITTI road devkit's ``getGroundTruth`` reads it (helper.py): road where
the blue channel > 0 (magenta 255,0,255), outside the valid area where the red channel is 0
(black: ignored), not road elsewhere (red 255,0,0). Only the training set has labels, so
``train``/``val`` are a fixed holdout of it (``val_percent``, chosen by file name), ``all``
is everything.
"""
import os

import numpy as np

from jetseg.eval.datasets.base import (SegDataset, holdout, list_images, need_dir, read_label_file, stem_of)
from jetseg.errors import JetsegError

NAMES = ["not road", "road"]
COLORS = [(255, 0, 0), (255, 0, 255)]
LAYOUT = ("ROOT/training/image_2/<cat>_<id>.png and "
          "ROOT/training/gt_image_2/<cat>_road_<id>.png (KITTI data_road)")


class KittiRoad(SegDataset):
    format = "kitti-road"

    def __init__(self, root, split="val", skip_bad=False, val_percent=20):
        super(KittiRoad, self).__init__(root, split, NAMES, COLORS, 255, skip_bad)
        root = str(root)
        need_dir(root, "dataset", LAYOUT)
        base = root
        if not os.path.isdir(os.path.join(base, "gt_image_2")):
            base = os.path.join(root, "training")
        img_dir = need_dir(os.path.join(base, "image_2"), "image", LAYOUT, root)
        gt_dir = need_dir(os.path.join(base, "gt_image_2"), "ground-truth", LAYOUT, root)
        labels = {}
        for p in list_images(gt_dir):
            s = stem_of(p)
            if "_road_" in s:
                labels[s.replace("_road_", "_", 1)] = p
        self._pair(list_images(img_dir), labels, img_dir, gt_dir, LAYOUT)
        self.items = holdout(self.items, split, val_percent, layout=LAYOUT, root=root)

    def decode_label(self, i):
        gt = read_label_file(self.items[i][1])
        if gt.ndim != 3:
            raise JetsegError("KITTI road ground truth must be a colour image",
                              path=self.items[i][1], fix="use the gt_image_2 PNGs as released")
        out = (gt[:, :, 0] > 0).astype(np.uint8)        # OpenCV is BGR: blue = road
        out[gt[:, :, 2] == 0] = self.ignore_index        # red 0: outside the valid area
        return out
