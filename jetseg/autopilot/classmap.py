"""Class maps and class names in: what every autopilot signal starts from.

``unpack`` takes an HxW class-id array or a ``Segmentation``; ``class_ids`` turns names
(case-insensitive when unambiguous) or ids into sorted class ids, raising JetsegError for
anything a user can fix; ``member`` is the boolean map of those classes.
"""
import numpy as np

from jetseg.errors import JetsegError


def unpack(classes, names):
    """(HxW class-id array, names or None) from a class map or a ``Segmentation``."""
    if hasattr(classes, "segmenter") and hasattr(classes, "classes"):
        if names is None:
            names = list(classes.segmenter.classes)
        classes = classes.classes
    if not isinstance(classes, np.ndarray):
        classes = np.asarray(classes)
    if classes.ndim != 2 or classes.dtype.kind not in "iub":
        raise JetsegError(
            "autopilot signals need an HxW map of class ids, got an array of shape {} and "
            "dtype {}".format(classes.shape, classes.dtype),
            fix="pass res.classes (or the Segmentation res itself), not an image or scores")
    return classes, names


def class_ids(spec, names, what):
    """Class ids for ``spec`` (names, ids, or a mix; a single name or id is fine too)."""
    if spec is None:
        return []
    if isinstance(spec, (str, int, np.integer)):
        spec = [spec]
    ids = []
    for item in spec:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            item = int(item)
            if item < 0 or (names is not None and item >= len(names)):
                raise JetsegError(
                    "{} {} is not a class id{}".format(
                        what, item, "" if names is None else " (0..{})".format(len(names) - 1)),
                    fix="give a valid class id or a class name")
            ids.append(item)
            continue
        if not isinstance(item, str):
            raise JetsegError("{} {!r} is neither a class name nor a class id".format(what, item),
                              fix="give class names (strings) or class ids (ints)")
        if names is None:
            raise JetsegError(
                "{} {!r} is a class name but no class names were given".format(what, item),
                fix="pass names=seg.classes (or the Segmentation itself), or give class ids")
        names = list(names)
        if item in names:
            ids.append(names.index(item))
            continue
        folded = [i for i, n in enumerate(names) if str(n).lower() == item.lower()]
        if len(folded) != 1:
            raise JetsegError("{} {!r} is not a class of this model".format(what, item),
                              fix="use one of: " + ", ".join(str(n) for n in names))
        ids.append(folded[0])
    return sorted(set(ids))


def member(classes, ids):
    """Boolean map: the pixel's class is one of ``ids``."""
    if not ids:
        return np.zeros(classes.shape, bool)
    if classes.dtype == np.uint8:
        lut = np.zeros(256, bool)
        lut[[i for i in ids if i < 256]] = True
        return lut[classes]
    out = classes == ids[0]
    for i in ids[1:]:
        out |= classes == i
    return out


def rounded(x, nd=4):
    """A float rounded for JSON (None stays None)."""
    return None if x is None else round(float(x), nd)
