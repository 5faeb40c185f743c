"""COCO instance annotations (polygons and RLE) rendered into semantic label maps.

    ROOT/annotations/instances_<split>2017.json     (any instances_<split>*.json)
    ROOT/<split>2017/*.jpg                          (or ROOT/images/<split>2017/)

Class 0 is ``background``; classes 1.. are the categories in category-id order (80 for
COCO 2017), or only ``categories`` (names or ids) when given - then pixels of the other
categories count as background and images without any selected category are left out.
Objects are painted largest first so that small objects on top stay visible; ``iscrowd``
regions are ignored (255). Masks are decoded with pycocotools when it is installed
(``backend="pycocotools"`` insists on it; the ``dev`` extra installs it, so the tests run
both paths); otherwise OpenCV fills the polygons and RLE (compressed or not) is decoded in
numpy, so a Jetson needs nothing extra.
"""
import glob
import json
import os

import numpy as np

from jetseg.eval.datasets.base import SegDataset, need_dir
from jetseg.errors import JetsegError, log, need_cv2
from jetseg.core.labels import generated_palette

LAYOUT = ("ROOT/annotations/instances_<split>2017.json and the images in ROOT/<split>2017/ "
          "(COCO layout)")


def _pycocotools(required):
    try:
        from pycocotools import mask as mask_utils
        return mask_utils
    except ImportError:
        if required:
            raise JetsegError("pycocotools is not installed", fix="pip install pycocotools "
                              "(jetseg's dev extra has it), or use backend='auto' (OpenCV "
                              "polygons, numpy RLE)")
        return None


def rle_string_to_counts(s):
    """COCO's compressed RLE string -> run lengths (pycocotools' rleFrString, in Python)."""
    if isinstance(s, bytes):
        s = s.decode("ascii")
    counts, p, m = [], 0, 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if m > 2:
            x += counts[m - 2]
        counts.append(x)
        m += 1
    return counts


def rle_decode(rle, height, width):
    """RLE dict (``counts`` list or string, column-major runs from 0) -> HxW uint8 mask."""
    counts = rle["counts"]
    if not isinstance(counts, list):
        counts = rle_string_to_counts(counts)
    h, w = rle.get("size", (height, width))
    flat = np.zeros(h * w, np.uint8)
    ends = np.cumsum(counts)
    starts = ends - np.asarray(counts)
    for s, e in zip(starts[1::2], ends[1::2]):
        flat[s:e] = 1
    return flat.reshape(w, h).T


def polygons_mask(polys, height, width):
    """Union of COCO polygons as an HxW uint8 mask, without pycocotools.

    Each polygon is filled by OpenCV at 8x (4x for large ones) resolution inside its
    bounding box and a pixel is set when half of it is covered - the pixel-area rule
    pycocotools approximates; a plain ``fillPoly`` would also take every boundary pixel
    (about 30% too much area on small objects).
    """
    cv2 = need_cv2("rasterising COCO polygons")
    mask = np.zeros((height, width), np.uint8)
    for poly in polys:
        if len(poly) < 6:
            continue
        p = np.asarray(poly, np.float64).reshape(-1, 2)
        x0, y0 = max(0, int(np.floor(p[:, 0].min()))), max(0, int(np.floor(p[:, 1].min())))
        x1 = min(width, int(np.ceil(p[:, 0].max())) + 1)
        y1 = min(height, int(np.ceil(p[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        s = 8 if (x1 - x0) * (y1 - y0) <= 65536 else 4
        sub = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
        # sub-pixel k covers [k/s, (k+1)/s) of the box; OpenCV puts pixel centres on integers
        q = np.round(((p - (x0, y0)) * s - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(sub, [q], 1, lineType=cv2.LINE_8, shift=4)
        cover = sub.reshape(y1 - y0, s, x1 - x0, s).sum(axis=(1, 3), dtype=np.int32)
        mask[y0:y1, x0:x1] |= (2 * cover >= s * s).astype(np.uint8)
    return mask


class Coco(SegDataset):
    format = "coco"

    def __init__(self, root, split="val", skip_bad=False, categories=None, backend="auto",
                 annotations=None, image_dir=None):
        root = str(root)
        need_dir(root, "dataset", LAYOUT)
        ann = annotations or self._find_annotations(root, split)
        try:
            with open(ann, "r") as f:
                data = json.load(f)
        except (IOError, OSError) as e:
            raise JetsegError("cannot read annotations: {}".format(e.strerror or e), path=ann,
                              fix="check the file")
        except ValueError as e:
            raise JetsegError("annotations are not valid JSON ({})".format(e), path=ann,
                              fix="re-download the annotation file")
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise JetsegError("no {!r} list: not a COCO instances file".format(key),
                                  path=ann, fix="use annotations/instances_<split>2017.json")
        cats = sorted(data["categories"], key=lambda c: c["id"])
        if categories:
            wanted = [str(c).strip() for c in categories]
            by_name = dict((c["name"], c) for c in cats)
            by_id = dict((str(c["id"]), c) for c in cats)
            chosen = []
            for w in wanted:
                c = by_name.get(w) or by_id.get(w)
                if c is None:
                    raise JetsegError("category {!r} is not in the annotations".format(w),
                                      path=ann, fix="use names or ids from: " + ", ".join(
                                          c["name"] for c in cats[:20]) + " ...")
                chosen.append(c)
            cats = chosen
        names = ["background"] + [c["name"] for c in cats]
        super(Coco, self).__init__(root, split, names, generated_palette(len(names)), 255,
                                   skip_bad)
        self.annotation_file = ann
        self.cat_to_class = dict((c["id"], i + 1) for i, c in enumerate(cats))
        self.mask_utils = _pycocotools(backend == "pycocotools") if backend != "opencv" \
            else None
        per_image = {}
        for a in data["annotations"]:
            per_image.setdefault(a["image_id"], []).append(a)
        img_dir = image_dir or self._find_images(root, split)
        images, missing = [], []
        for im in sorted(data["images"], key=lambda im: im["file_name"]):
            anns = per_image.get(im["id"], [])
            if categories and not any(a["category_id"] in self.cat_to_class for a in anns):
                continue
            path = os.path.join(img_dir, im["file_name"])
            if not os.path.isfile(path):
                missing.append(path)
                continue
            images.append((path, ann, im, anns))
        if missing:
            if not skip_bad:
                raise JetsegError("{} of {} annotated images are missing (first: {})".format(
                    len(missing), len(missing) + len(images), missing[0]), path=root,
                    fix="download the images, or pass --skip-bad; expected layout: " + LAYOUT)
            log.warning("%s: skipping %d annotated images that are missing (first: %s)",
                        root, len(missing), missing[0])
            self.skipped.extend((m, "missing image") for m in missing)
        if not images:
            raise JetsegError("no annotated images found", path=ann,
                              fix="expected layout: " + LAYOUT)
        self.items = images

    @staticmethod
    def _find_annotations(root, split):
        for pat in ("annotations/instances_{}2017.json", "annotations/instances_{}*.json",
                    "instances_{}*.json"):
            hits = sorted(glob.glob(os.path.join(root, pat.format(split))))
            if hits:
                return hits[0]
        raise JetsegError("no instances_{}*.json found under {}".format(
            split, os.path.join(root, "annotations")), path=root,
            fix="expected layout: " + LAYOUT.replace("<split>", split))

    @staticmethod
    def _find_images(root, split):
        for d in ("{}2017", "images/{}2017", "{}", "images/{}", "images"):
            p = os.path.join(root, d.format(split))
            if os.path.isdir(p):
                return p
        raise JetsegError("image folder {} not found".format(
            os.path.join(root, split + "2017")), path=root,
            fix="expected layout: " + LAYOUT.replace("<split>", split))

    def paths(self, i):
        """(image path, annotation JSON) - COCO labels live in the JSON."""
        return tuple(self.items[self._index(i)][:2])

    def decode_label(self, i):
        _, _, im, anns = self.items[i]
        h, w = int(im["height"]), int(im["width"])
        out = np.zeros((h, w), np.uint8 if len(self.names) <= 255 else np.int32)
        crowd = np.zeros((h, w), bool)
        for a in sorted(anns, key=lambda a: -float(a.get("area", 0))):
            cls = self.cat_to_class.get(a["category_id"])
            if cls is None:
                continue
            m = self.ann_mask(a, h, w).astype(bool)
            if a.get("iscrowd"):
                crowd |= m
            else:
                out[m] = cls
        out[crowd] = self.ignore_index
        return out

    def ann_mask(self, ann, h, w):
        seg = ann["segmentation"]
        mu = self.mask_utils
        if mu is not None:
            if isinstance(seg, list):
                rles = mu.frPyObjects(seg, h, w)
                rle = mu.merge(rles) if rles else None
                return mu.decode(rle) if rle is not None else np.zeros((h, w), np.uint8)
            if isinstance(seg["counts"], list):
                seg = mu.frPyObjects(seg, h, w)
            return mu.decode(seg)
        if isinstance(seg, list):
            return polygons_mask(seg, h, w)
        return rle_decode(seg, h, w)
