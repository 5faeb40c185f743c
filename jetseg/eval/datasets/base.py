"""What every dataset reader shares: the ``SegDataset`` interface and the helpers behind it.

    ds = open_dataset("../shared/datasets/camvid", "camvid", "val")
    image, label = ds[0]        # HxWx3 uint8 BGR, HxW uint8 (int32 past 255 classes)
    ds.names, ds.colors         # class names, (r, g, b) colours; class id = list index
    ds.ignore_index             # label value that is neither scored nor trained on
    ds.paths(0)                 # (image file, label file) for messages and tools

Label values are ``0 .. num_classes - 1`` or ``ignore_index``; anything else in a file is
an error that names the file (or a skipped sample with ``skip_bad=True``).
"""
import os
import zlib

import numpy as np

from jetseg.errors import JetsegError, log, need_cv2
from jetseg.files import IMAGE_EXTS, read_image

IGNORE = 255
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}


class SegDataset(object):
    """Image/label pairs with class names, colours and an ignore index.

    Subclasses fill ``self.items`` (a list of (image path, label path)), ``names``,
    ``colors`` and ``ignore_index`` and implement ``decode_label(i)``.
    """

    format = None
    has_sequences = False   # True: frames come from recordings, ``sequence(i)`` names frame i's

    def __init__(self, root, split, names, colors, ignore_index=IGNORE, skip_bad=False):
        self.root = str(root)
        self.split = split
        self.names = list(names)
        self.colors = [tuple(int(v) for v in c[:3]) for c in colors]
        self.ignore_index = int(ignore_index)
        self.skip_bad = skip_bad
        self.items = []
        self.skipped = []          # (path, reason) of samples left out at open time

    # ---- the interface ------------------------------------------------------------------
    @property
    def num_classes(self):
        return len(self.names)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        i = self._index(i)
        image = read_image(self.items[i][0])
        label = self.read_label(i)
        if label.shape[:2] != image.shape[:2]:
            raise JetsegError(
                "label is {}x{} but its image {} is {}x{}".format(
                    label.shape[1], label.shape[0], self.items[i][0], image.shape[1],
                    image.shape[0]), path=self.label_path(i),
                fix="give every image a label map of the same size (or pass --skip-bad)")
        return image, label

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def paths(self, i):
        """(image path, label path) of sample ``i``."""
        return tuple(self.items[self._index(i)][:2])

    def label_path(self, i):
        return self.items[self._index(i)][1]

    def read_label(self, i):
        """HxW label map of sample ``i``, checked: values are class ids or ``ignore_index``."""
        label = self.decode_label(self._index(i))
        return check_label(label, self.num_classes, self.ignore_index, self.label_path(i))

    def decode_label(self, i):
        raise NotImplementedError

    def validate(self):
        """Read every sample once. Bad ones (unreadable, label of another size, ids past the
        class count) raise one error naming the first and how many there are, or with
        ``skip_bad`` are dropped (listed in ``skipped``). Returns the number dropped."""
        bad = []
        for i in range(len(self.items)):
            try:
                self[i]
            except JetsegError as e:
                bad.append((i, str(e)))
        if not bad:
            return 0
        if not self.skip_bad:
            raise JetsegError("{} of {} samples are bad; the first: {}".format(
                len(bad), len(self.items), bad[0][1]), path=self.root,
                fix="fix those files or pass --skip-bad to leave them out")
        drop = set(i for i, _ in bad)
        self.skipped.extend((self.items[i][0], msg) for i, msg in bad)
        self.items = [it for k, it in enumerate(self.items) if k not in drop]
        log.warning("%s: skipping %d bad sample(s) (first: %s)", self.root, len(bad), bad[0][1])
        return len(bad)

    def describe(self):
        return "{} {} split: {} samples, {} classes (ignore {}) from {}".format(
            self.format, self.split, len(self), self.num_classes, self.ignore_index, self.root)

    def info(self):
        """JSON-able facts for reports."""
        return {"format": self.format, "root": self.root, "split": self.split,
                "samples": len(self), "classes": self.names,
                "colors": [list(c) for c in self.colors], "ignore_index": self.ignore_index,
                "skipped": len(self.skipped)}

    def __repr__(self):
        return "<{} {}>".format(type(self).__name__, self.describe())

    def _index(self, i):
        n = len(self.items)
        if not -n <= i < n:
            raise IndexError("sample {} of a {}-sample dataset".format(i, n))
        return i % n

    # ---- helpers for subclasses ---------------------------------------------------------
    def _pair(self, images, labels_by_stem, image_dir, label_dir, layout):
        """Pair images with labels by stem; missing labels are an error (or skipped)."""
        if not images:
            raise JetsegError("no images found in {}".format(image_dir), path=self.root,
                              fix="expected layout: " + layout)
        items, missing = [], []
        for img in images:
            lab = labels_by_stem.get(stem_of(img))
            if lab is None:
                missing.append(img)
            else:
                items.append((img, lab))
        if missing:
            if not self.skip_bad:
                raise JetsegError(
                    "{} of {} images have no label in {} (first: {})".format(
                        len(missing), len(images), label_dir, missing[0]), path=self.root,
                    fix="add the label maps (same name, .png) or pass --skip-bad to leave "
                        "those images out; expected layout: " + layout)
            log.warning("%s: skipping %d of %d images without a label (first: %s)",
                        self.root, len(missing), len(images), missing[0])
            self.skipped.extend((m, "no label") for m in missing)
        self.items = items
        return items


def stem_of(path):
    return os.path.splitext(os.path.basename(str(path)))[0]


def list_images(folder, recursive=False):
    """Sorted image files in ``folder`` (optionally below it)."""
    folder = str(folder)
    out = []
    if recursive:
        for d, _, files in os.walk(folder, followlinks=True):
            out.extend(os.path.join(d, f) for f in files if f.lower().endswith(IMAGE_EXTS))
    elif os.path.isdir(folder):
        out = [os.path.join(folder, f) for f in os.listdir(folder)
               if f.lower().endswith(IMAGE_EXTS) and not f.startswith(".")]
    return sorted(out)


def need_dir(path, what, layout, root=None):
    if not os.path.isdir(str(path)):
        raise JetsegError("{} folder {} not found".format(what, path), path=root or path,
                          fix="expected layout: " + layout)
    return str(path)


def holdout(items, split, val_percent, key=stem_of, layout="", root=""):
    """Deterministic train/val split of one labelled folder (for sets without a val split).

    A sample is in ``val`` when crc32(stem) % 100 < val_percent: the same on every machine
    and stable when files are added. ``all`` (or ``trainval``) keeps everything.
    """
    split = SPLIT_ALIASES.get(split, split)
    if split in ("all", "trainval"):
        return list(items)
    if split not in ("train", "val"):
        raise JetsegError("split {!r} is not available here".format(split), path=root,
                          fix="use train, val or all ({}% of the samples, chosen by name, "
                              "are val); expected layout: {}".format(val_percent, layout))
    want_val = split == "val"
    out = [it for it in items
           if ((zlib.crc32(key(it[0]).encode("utf-8")) & 0xffffffff) % 100 < val_percent)
           == want_val]
    return out


def read_label_file(path, what="label"):
    """A label image as stored: HxW for grey/indexed-as-grey PNGs, HxWx3 BGR for colour."""
    cv2 = need_cv2("reading label maps")
    path = str(path)
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None:
        raise JetsegError("{} file not found".format(what), path=path,
                          fix="check the dataset folder")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise JetsegError("not a readable {} image".format(what), path=path,
                          fix="re-export the label as PNG")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def check_label(label, num_classes, ignore_index, path):
    """Raise a JetsegError naming ``path`` when ``label`` holds ids past the class count."""
    if label.ndim != 2:
        raise JetsegError("label map has shape {}; expected one class id per pixel".format(
            label.shape), path=path, fix="give single-channel class-id PNGs for this format")
    bad = (label >= num_classes) & (label != ignore_index)
    if label.dtype.kind == "i":
        bad |= label < 0
    if bad.any():
        values = np.unique(label[bad])
        raise JetsegError(
            "label holds class id(s) {} in {} pixels but the dataset has {} classes (0..{}, "
            "ignore {})".format(", ".join(str(int(b)) for b in values[:8]), int(bad.sum()),
                                num_classes, num_classes - 1, ignore_index), path=path,
            fix="check the class list / --format, or pass --skip-bad to leave this file out")
    if label.dtype != np.uint8 and num_classes <= 256 and 0 <= ignore_index <= 255:
        return label.astype(np.uint8)
    if label.dtype not in (np.uint8, np.int32):
        return label.astype(np.int32)
    return label


def pack_rgb(r, g, b):
    return (np.asarray(r, np.int32) << 16) | (np.asarray(g, np.int32) << 8) | np.asarray(b, np.int32)


class ColorDecoder(object):
    """Colour-coded label images -> class ids, vectorised.

    Each pixel's (r, g, b) is packed into one int32 and looked up with ``np.searchsorted``
    in the sorted class colours. Colours not in the table become ``ignore_index`` with one
    warning per decoder (naming the first file and colour), or an error when ``strict``.
    """

    def __init__(self, colors, ids=None, ignore_index=IGNORE, source="colour table",
                 strict=False):
        colors = [tuple(int(v) for v in c[:3]) for c in colors]
        ids = list(range(len(colors))) if ids is None else list(ids)
        seen = {}
        for c, i in zip(colors, ids):
            if c in seen and seen[c] != i:
                raise JetsegError("colour {} is given to two classes ({} and {})".format(
                    c, seen[c], i), path=source, fix="give every class its own colour")
            seen[c] = i
        keys = np.array([pack_rgb(*c) for c in seen], np.int32)
        vals = np.array(list(seen.values()), np.int32)
        order = np.argsort(keys)
        self.keys = keys[order]
        self.vals = vals[order]
        self.ignore_index = ignore_index
        self.source = source
        self.strict = strict
        self.warned = False
        self.unknown_pixels = 0
        self.dtype = np.uint8 if max(list(vals) + [ignore_index]) <= 255 else np.int32

    def __call__(self, bgr, path=None):
        if bgr.ndim != 3:
            raise JetsegError("label is single-channel but this dataset uses colour-coded "
                              "labels", path=path, fix="give RGB label images (or the "
                                                       "matching --format)")
        packed = pack_rgb(bgr[:, :, 2], bgr[:, :, 1], bgr[:, :, 0])
        idx = np.searchsorted(self.keys, packed)
        np.minimum(idx, len(self.keys) - 1, out=idx)
        hit = self.keys[idx] == packed
        out = np.where(hit, self.vals[idx], self.ignore_index).astype(self.dtype)
        if not hit.all():
            miss = packed[~hit]
            self.unknown_pixels += miss.size
            first = [((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255)
                     for v in np.unique(miss)[:4]]
            if self.strict:
                raise JetsegError("{} pixels have colours not in {}, e.g. {}".format(
                    miss.size, self.source, first), path=path,
                    fix="add the colours to the class file or pass --skip-bad")
            if not self.warned:
                log.warning("%s: %d pixels have colours not in %s (e.g. %s); they are "
                            "ignored (label %d). Further files are not reported.",
                            path, miss.size, self.source,
                            ", ".join(str(c) for c in first), self.ignore_index)
                self.warned = True
        return out
