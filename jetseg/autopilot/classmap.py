"""Class maps and class names in: what every autopilot signal starts from.

``unpack`` takes an HxW class-id array or a ``Segmentation``; ``class_ids`` turns names
(case-insensitive when unambiguous) or ids into sorted class ids, raising JetsegError for
anything a user can fix; ``member`` is the boolean map of those classes.
"""
import numpy as np

from jetseg.core import labels
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


_IDS = {}


def class_ids(spec, names, what):
    """Class ids for ``spec`` (names, ids, or a mix): ``jetseg.core.labels.class_ids``,
    remembered per (spec, names): the signals ask for the same classes every frame."""
    try:
        key = (tuple(spec) if isinstance(spec, (list, tuple)) else spec,
               None if names is None else tuple(names), what)
        got = _IDS.get(key)
    except TypeError:                                   # something unhashable: no memo
        return labels.class_ids(spec, names, what)
    if got is None:
        got = labels.class_ids(spec, names, what)       # a bad name raises, never stored
        if len(_IDS) > 256:
            _IDS.clear()
        _IDS[key] = got
    return list(got)


def member(classes, ids):
    """Boolean map: the pixel's class is one of ``ids``. One comparison per id: a lookup
    table indexed by a uint8 map is 10-50x slower in numpy (fancy indexing), so it is
    used only for long id lists."""
    if not ids:
        return np.zeros(classes.shape, bool)
    if classes.dtype == np.uint8 and len(ids) > 16:
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
