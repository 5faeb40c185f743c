"""The frames ``jetseg eval`` scores: one or more splits pooled, optionally only some sequences.

    from jetseg.eval.selection import open_selection
    ds = open_selection(root, "camvid", "train,val", "0006R0")   # one held-out sequence
    len(ds), ds[0], ds.describe(), ds.info()["sequences"]

A ``Selection`` reads like a ``SegDataset`` (``len``, ``[i] -> (image, label)``, ``names``,
``colors``, ``ignore_index``, ``paths(i)``, ``sequence(i)``, ``describe()``, ``info()``).
Splits are pooled with each image once (by absolute path), in the order given. Sequences
come from the reader (``has_sequences`` / ``sequence(i)``; CamVid: the file-name prefix),
the same frames ``jetseg train --holdout SEQ`` validates on, so a fold's held-out figure can
be measured again on any exported model (FP32, FP16, INT8) of that fold.
"""
import collections
import os

from jetseg.errors import JetsegError


def split_list(text):
    """'train,val' -> ['train', 'val'] (blanks and repeats dropped, order kept)."""
    out = []
    for s in str(text or "").split(","):
        s = s.strip()
        if s and s not in out:
            out.append(s)
    return out


def pool_parts(readers):
    """[(reader, index)] of every frame of ``readers`` (e.g. the train and val splits), each
    image once (by absolute path), in the order given: what eval and training pool."""
    seen, parts = set(), []
    for r in readers:
        for k in range(len(r)):
            path = os.path.abspath(r.paths(k)[0])
            if path not in seen:
                seen.add(path)
                parts.append((r, k))
    return parts


def _counts_text(counts):
    return ", ".join("{} {}".format(s, n) for s, n in sorted(counts.items()))


class Selection(object):
    """Chosen frames of one or more readers (splits) of one dataset."""

    def __init__(self, readers, splits, sequences=None):
        first = readers[0]
        self.readers = list(readers)
        self.splits = list(splits)
        self.sequences = list(sequences) if sequences else None
        self.names, self.colors = list(first.names), list(first.colors)
        self.ignore_index, self.root, self.format = first.ignore_index, first.root, first.format
        self.has_sequences = all(getattr(r, "has_sequences", False) for r in self.readers)
        self.split = "+".join(self.splits)
        self.skipped = [s for r in self.readers for s in getattr(r, "skipped", [])]
        self.parts = pool_parts(self.readers)
        if self.sequences is not None:
            self._keep_sequences()

    def _keep_sequences(self):
        if not self.has_sequences:
            raise JetsegError(
                "--sequence needs frames grouped into sequences (recordings) and the {} "
                "format has none".format(self.format), path=self.root,
                fix="drop --sequence, or use a format whose frames name their sequence "
                    "(camvid: the file-name prefix, 0016E5 in 0016E5_07959.png)")
        counts = collections.Counter(self.sequence(i) for i in range(len(self.parts)))
        counts.pop(None, None)
        unknown = [s for s in self.sequences if s not in counts]
        if unknown:
            raise JetsegError(
                "no sequence {} in the {} split(s); the sequences (frames) there are: "
                "{}".format(", ".join(unknown), self.split, _counts_text(counts) or "none"),
                path=self.root, fix="give one or more of those, e.g. --sequence {}{}".format(
                    min(counts) if counts else "SEQ",
                    "" if len(self.splits) > 1 else " (or pool splits: --split train,val)"))
        want = set(self.sequences)
        self.parts = [p for i, p in enumerate(self.parts) if self.sequence(i) in want]

    # ---- the SegDataset interface -------------------------------------------------------
    def __len__(self):
        return len(self.parts)

    def __getitem__(self, i):
        r, k = self.parts[i]
        return r[k]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def num_classes(self):
        return len(self.names)

    def paths(self, i):
        r, k = self.parts[i]
        return r.paths(k)

    def label_path(self, i):
        return self.paths(i)[1]

    def sequence(self, i):
        """Frame ``i``'s sequence where the reader has sequences, else None."""
        r, k = self.parts[i]
        return r.sequence(k) if getattr(r, "has_sequences", False) else None

    def frames_per_sequence(self):
        if not self.has_sequences:
            return None
        counts = collections.Counter(self.sequence(i) for i in range(len(self)))
        return dict((str(s), n) for s, n in sorted(counts.items(), key=lambda kv: str(kv[0])))

    def what(self):
        """'camvid train+val split(s), sequence 0006R0: 101 frames' (the report header)."""
        s = "{} {} split{}".format(self.format, self.split, "s" if len(self.splits) > 1 else "")
        if self.sequences:
            s += ", sequence{} {}".format("s" if len(self.sequences) > 1 else "",
                                          ",".join(self.sequences))
        return "{}: {} frames".format(s, len(self))

    def describe(self):
        return "{}, {} classes (ignore {}) from {}".format(
            self.what(), self.num_classes, self.ignore_index, self.root)

    def info(self):
        """JSON-able facts for reports: the reader's, plus which splits and sequences."""
        d = {"format": self.format, "root": self.root, "split": self.split,
             "splits": list(self.splits), "sequences": self.sequences,
             "samples": len(self), "frames_per_sequence": self.frames_per_sequence(),
             "classes": self.names, "colors": [list(c) for c in self.colors],
             "ignore_index": self.ignore_index, "skipped": len(self.skipped)}
        return d

    def __repr__(self):
        return "<Selection {}>".format(self.describe())


def open_selection(root, format="auto", split="val", sequence=None, **options):
    """``split``: one split or several, comma-separated, pooled; ``sequence``: None or
    comma-separated sequence names to keep. ``options`` go to each reader."""
    from jetseg.eval.datasets import open_dataset
    splits = split_list(split)
    if not splits:
        raise JetsegError("no split given", fix="e.g. --split val or --split train,val")
    readers = [open_dataset(root, format, s, **options) for s in splits]
    seqs = split_list(sequence) if sequence is not None else None
    if sequence is not None and not seqs:
        raise JetsegError("--sequence names no sequence", fix="e.g. --sequence 0006R0")
    return Selection(readers, splits, seqs)
