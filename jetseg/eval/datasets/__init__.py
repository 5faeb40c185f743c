"""Dataset readers for evaluation and training, one small module a format.

    from jetseg.eval.datasets import open_dataset
    ds = open_dataset("../shared/datasets/camvid", "camvid", "val")
    for image_bgr, label in ds: ...

Every reader is a ``SegDataset`` (see ``base``): ``len(ds)``, ``ds[i] -> (image, label)``,
``ds.names``, ``ds.colors`` (r, g, b), ``ds.ignore_index``, ``ds.split``, ``ds.paths(i)``.

Formats: camvid, digits, kitti-road, coco, cityscapes, drone (each module's docstring gives
the folder layout it expects and where that layout comes from).
"""
import importlib
import os

from jetseg.errors import JetsegError
from jetseg.eval.datasets.base import ColorDecoder, SegDataset  # noqa: F401

__all__ = ["open_dataset", "detect_format", "dataset_class", "SegDataset", "ColorDecoder",
           "FORMATS"]

FORMATS = {
    "camvid": ("camvid", "CamVid"),
    "digits": ("digits", "Digits"),
    "kitti-road": ("kitti_road", "KittiRoad"),
    "coco": ("coco", "Coco"),
    "cityscapes": ("cityscapes", "Cityscapes"),
    "drone": ("drone", "SemanticDrone"),
}
ALIASES = {"kitti": "kitti-road", "kitti_road": "kitti-road", "semantic-drone": "drone",
           "nvidia-fpv": "digits", "fpv": "digits"}


def dataset_class(fmt):
    fmt = ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise JetsegError("unknown dataset format {!r}".format(fmt),
                          fix="use one of: auto, " + ", ".join(sorted(FORMATS)))
    module, name = FORMATS[fmt]
    return getattr(importlib.import_module("." + module, __name__), name)


def detect_format(root):
    """Guess the format from the folder layout, or None."""
    root = str(root)
    if not os.path.isdir(root):
        return None
    entries = set(os.listdir(root))

    def has(*parts):
        return os.path.exists(os.path.join(root, *parts))

    if has("leftImg8bit") and has("gtFine"):
        return "cityscapes"
    if has("training", "gt_image_2") or has("gt_image_2"):
        return "kitti-road"
    if any(e.endswith("annot") and e[:-5] in entries for e in entries):
        return "camvid"
    if has("annotations") and any(f.startswith("instances_") for f in
                                  os.listdir(os.path.join(root, "annotations"))):
        return "coco"
    for base in [root] + [os.path.join(root, e) for e in sorted(entries)]:
        if os.path.isdir(base) and any(os.path.exists(os.path.join(base, p)) for p in (
                "class_dict.csv", "class_dict_seg.csv", "training_set", "original_images")):
            return "drone"
        if os.path.isdir(os.path.join(base, "images")) and \
                os.path.isdir(os.path.join(base, "labels")):
            return "digits"
    if has("train", "images"):
        return "digits"
    return None


def open_dataset(root, format="auto", split="val", **options):
    """Open ``root`` as a dataset of ``format`` (or the detected one); ``options`` go to the
    reader (e.g. ``skip_bad=True``, ``categories=[...]`` for coco, ``val_percent``)."""
    root = str(root)
    if not os.path.isdir(root):
        fix = "give the folder that holds the dataset"
        if (format or "auto") in ("auto", "camvid"):
            fix += "; to get CamVid: jetseg data download camvid " + root
        raise JetsegError("dataset folder not found", path=root, fix=fix)
    fmt = format or "auto"
    if fmt == "auto":
        fmt = detect_format(root)
        if fmt is None:
            raise JetsegError("cannot tell the dataset format from the folder layout",
                              path=root, fix="pass --format (" + ", ".join(sorted(FORMATS)) +
                              "); each format's expected layout is in jetseg/datasets/")
    return dataset_class(fmt)(root, split=split, **options)
