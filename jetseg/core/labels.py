"""Class names and colours in jetson-inference's ``classes.txt`` / ``colors.txt`` formats.

classes.txt: one label a line; an ImageNet-style synset prefix (``n01440764 tench``) is
stripped. colors.txt: ``R G B [A]`` a line; missing values are 255; a line that gives A
explicitly keeps that alpha whatever ``--alpha`` says. A colour is kept as a tuple of 3
(alpha follows ``--alpha``) or 4 (explicit alpha) ints.
"""
import re

from jetseg.errors import JetsegError, log, option

_SYNSET = re.compile(r"^n\d{8}\s+")


def _read_lines(path, what):
    try:
        with open(str(path), "r") as f:
            text = f.read()
    except (IOError, OSError) as e:
        raise JetsegError("cannot read {} file: {}".format(what, e.strerror or e), path=path,
                          fix="check the path given as {}".format(option(what)))
    except UnicodeDecodeError:
        raise JetsegError("{} file is not text".format(what), path=path,
                          fix="give a text file with one entry a line")
    return text.splitlines()


def read_labels(path):
    """Names from a classes.txt (blank lines and ``#`` comments skipped)."""
    names = []
    for line in _read_lines(path, "labels"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names.append(_SYNSET.sub("", line).strip())
    if not names:
        raise JetsegError("labels file has no class names", path=path,
                          fix="write one class name a line, class 0 first")
    return names


def parse_color(text, where="color"):
    """``"R G B [A]"`` (spaces or commas) -> tuple of 3 or 4 ints in 0..255."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if not 1 <= len(parts) <= 4:
        raise JetsegError("{}: expected 'R G B [A]', got {!r}".format(where, text),
                          fix="write each colour as three or four numbers 0-255")
    vals = []
    for p in parts:
        try:
            v = int(round(float(p)))
        except ValueError:
            raise JetsegError("{}: {!r} is not a number".format(where, p),
                              fix="write each colour as three or four numbers 0-255")
        if not 0 <= v <= 255:
            raise JetsegError("{}: {} is outside 0-255".format(where, v),
                              fix="write each colour as three or four numbers 0-255")
        vals.append(v)
    while len(vals) < 3:        # jetson-inference fills what is missing with 255
        vals.append(255)
    return tuple(vals)


def read_colors(path):
    colors = []
    for i, line in enumerate(_read_lines(path, "colors")):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        colors.append(parse_color(line, where="{} line {}".format(path, i + 1)))
    if not colors:
        raise JetsegError("colors file has no colours", path=path,
                          fix="write one 'R G B [A]' line a class, class 0 first")
    return colors


def generated_palette(n):
    """n distinct colours (the PASCAL VOC bit-interleaved palette), as (r, g, b) tuples."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def fit_labels(names, num_classes, source="labels"):
    """Make ``names`` exactly ``num_classes`` long: too few is a warning, too many an error."""
    if names is None:
        return ["class #{}".format(i) for i in range(num_classes)]
    names = list(names)
    if len(names) > num_classes:
        raise JetsegError(
            "{} lists {} classes but the model outputs {}".format(source, len(names), num_classes),
            fix="give the classes.txt the model was trained with (one name per output class)")
    if len(names) < num_classes:
        log.warning("%s lists %d classes but the model outputs %d; the rest are named 'class #N'",
                    source, len(names), num_classes)
        names += ["class #{}".format(i) for i in range(len(names), num_classes)]
    return names


def check_count(items, num_classes, source, what, allow=False):
    """Class names (``what="labels"``) or colours (``"colors"``) the user gave, for a model
    with ``num_classes`` classes: another count is an error that names ``source`` and both
    counts, unless ``allow`` (``--labels-mismatch-ok``); then extra entries are dropped with
    a warning, and fit_labels / fit_colors fill the missing ones."""
    if items is None or len(items) == num_classes:
        return items
    noun = "classes" if what == "labels" else "colours"
    text = "{} lists {} {} but the model outputs {} classes".format(
        source, len(items), noun, num_classes)
    if not allow:
        fix = "give the {} the model was trained with (one line per class, class 0 first), " \
              "or pass {} to accept it".format("classes.txt" if what == "labels" else
                                               "colors.txt", option("labels_mismatch_ok", True))
        raise JetsegError(text, fix=fix)
    if len(items) > num_classes:
        log.warning("%s; the last %d are not used", text, len(items) - num_classes)
        return list(items)[:num_classes]
    return items


def fit_colors(colors, num_classes, source="colors"):
    """Make ``colors`` exactly ``num_classes`` long; missing classes get generated colours."""
    colors = list(colors or [])
    if len(colors) > num_classes:
        raise JetsegError(
            "{} lists {} colours but the model outputs {} classes".format(
                source, len(colors), num_classes),
            fix="give one 'R G B [A]' line per output class")
    if len(colors) < num_classes:
        taken = set(c[:3] for c in colors)
        extra = [c for c in generated_palette(num_classes + len(colors) + 1)[1:] if c not in taken]
        colors += extra[:num_classes - len(colors)]
    return [tuple(int(v) for v in c) for c in colors]


def class_ids(spec, names, what="class"):
    """Class ids for ``spec``: one class or a list of them, each a name or an id.

    spec    None (no classes), a name, an id (int or a string of digits), or a list of those
    names   the model's class names in id order (None: only ids can be given)
    what    what the classes are for, named in errors (e.g. "--ignore-class", "sky class")

    Names match exactly first, then case-insensitively when that is unambiguous. Returns the
    sorted unique ids; anything unknown is a JetsegError that names it and the valid classes.
    """
    if spec is None:
        return []
    if not isinstance(spec, (list, tuple, set, frozenset)) and getattr(spec, "ndim", 0) == 0:
        spec = [spec]               # one class (a numpy integer included)
    names = None if names is None else [str(n) for n in names]
    valid = ("use one of: " + ", ".join(names)) if names else "give a valid class id"
    ids = []
    for item in spec:
        if isinstance(item, str) and (names is None or item not in names) and \
                item.strip().lstrip("-").isdigit():
            item = int(item)                # "3" from a command line is an id
        if getattr(item, "ndim", None) == 0 and item.dtype.kind in "iu":
            item = int(item)
        if isinstance(item, int) and not isinstance(item, bool):
            if item < 0 or (names is not None and item >= len(names)):
                raise JetsegError("{} {} is not a class id{}".format(
                    what, item, "" if names is None else " (0..{})".format(len(names) - 1)),
                    fix=valid if names else "give a class id 0 or more")
            ids.append(item)
            continue
        if not isinstance(item, str):
            raise JetsegError("{} {!r} is neither a class name nor a class id".format(what, item),
                              fix="give class names (strings) or class ids (ints)")
        if names is None:
            raise JetsegError("{} {!r} is a class name but no class names are known".format(
                what, item), fix="give class ids, or the class names (names= from Python, "
                                  "--labels on the command line)")
        if item in names:
            ids.append(names.index(item))
            continue
        folded = [i for i, n in enumerate(names) if n.lower() == item.lower()]
        if len(folded) != 1:
            raise JetsegError("{} {!r} is not a class of this model".format(what, item),
                              fix=valid)
        ids.append(folded[0])
    return sorted(set(ids))


def class_fractions(counts, names):
    """{name: share of the counted pixels}, every class in class-id order, from per-class
    pixel counts (``np.bincount`` of a class map, or a sum of them); all 0.0 when empty."""
    counts = counts.astype("int64").tolist() if hasattr(counts, "astype") else \
        [int(c) for c in counts]                         # Python ints, in one conversion
    total = float(max(1, sum(counts)))
    return dict((name, c / total) for name, c in zip(names, counts))


def write_labels(path, names):
    from jetseg.files import write_atomic
    write_atomic(path, "".join(n + "\n" for n in names).encode("utf-8"))


def write_colors(path, colors):
    from jetseg.files import write_atomic
    write_atomic(path, "".join(" ".join(str(v) for v in c) + "\n" for c in colors).encode("utf-8"))


def resolve_alpha(colors, alpha):
    """Per-class alpha 0..255: explicit 4th value wins, otherwise ``alpha``."""
    return [c[3] if len(c) > 3 else int(alpha) for c in colors]

