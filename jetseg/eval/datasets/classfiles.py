"""Class tables that datasets ship beside their labels: a palette PNG's colours, a
DIGITS-style colour file (``R G B`` a line) and a CSV class table read by its header."""
import re

from jetseg.errors import JetsegError


def png_palette(path):
    """The PLTE of an indexed PNG as [(r, g, b), ...], or None (OpenCV expands palettes)."""
    import struct
    try:
        with open(str(path), "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            color_type = None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                n, kind = struct.unpack(">I4s", head)
                data = f.read(n)
                f.read(4)
                if kind == b"IHDR":
                    color_type = data[9]
                elif kind == b"PLTE":
                    if color_type != 3:
                        return None
                    return [tuple(bytearray(data[i:i + 3])) for i in range(0, n - n % 3, 3)]
                elif kind in (b"IDAT", b"IEND"):
                    return None
    except (IOError, OSError):
        return None


def read_class_colors(path, what="class colour file"):
    """``R G B`` a line (DIGITS colour map / jetson-inference colors.txt)."""
    from jetseg.core.labels import read_colors
    return [c[:3] for c in read_colors(path)]


_CSV_SPLIT = re.compile(r"\s*[,;\t]\s*")
# header names of a class table's columns (lower case); the first is what the code calls it
CSV_COLUMNS = (("id", "class_id"), ("name", "class", "class_name", "label"), ("r", "red"),
               ("g", "green"), ("b", "blue"))


def _csv_header(parts):
    """{"id"?, "name", "r", "g", "b"} -> column index, when ``parts`` is a header naming at
    least name, r, g and b; else None."""
    low = [p.strip().lower() for p in parts]
    cols = {}
    for names in CSV_COLUMNS:
        hit = [i for i, p in enumerate(low) if p in names]
        if hit:
            cols[names[0]] = hit[0]
    return cols if all(k in cols for k in ("name", "r", "g", "b")) else None


def read_class_csv(path):
    """A class table, one class a row, as (names, colors, ids); ``ids`` is None when the
    table has no id column. Columns are found by the header: ``name, r, g, b`` (the Semantic
    Drone Dataset's class_dict.csv) or ``id,name,r,g,b`` (its Kaggle copy's
    class_dict_seg.csv: ids -1 (unlabeled) to 22). Without a header, rows are ``name,r,g,b``
    or, five fields starting with an integer, ``id,name,r,g,b``."""
    fix = "write a header (id,name,r,g,b or name,r,g,b) and one row a class"
    try:
        with open(str(path), "r") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
    except (IOError, OSError) as e:
        raise JetsegError("cannot read class table: {}".format(e.strerror or e), path=path,
                          fix="check the dataset folder")
    cols = _csv_header(_CSV_SPLIT.split(lines[0])) if lines else None
    names, colors, ids = [], [], []
    for n, line in enumerate(lines):
        parts = _CSV_SPLIT.split(line)
        if cols is not None:
            if n == 0:
                continue
            if len(parts) <= max(cols.values()):
                raise JetsegError("line {}: expected {} columns, got {!r}".format(
                    n + 1, len(cols), line), path=path, fix=fix)
            row = dict((k, parts[i]) for k, i in cols.items())
        elif len(parts) == 5 and re.match(r"^-?\d+$", parts[0]):
            row = dict(zip(("id", "name", "r", "g", "b"), parts))
        elif len(parts) >= 4:
            row = {"name": ",".join(parts[:-3]), "r": parts[-3], "g": parts[-2],
                   "b": parts[-1]}
        else:
            raise JetsegError("line {}: expected name,r,g,b, got {!r}".format(n + 1, line),
                              path=path, fix=fix)
        try:
            rgb = tuple(int(row[c]) for c in "rgb")
            cid = int(row["id"]) if "id" in row else None
        except ValueError:
            if n == 0:
                continue                # a header this reader does not know: positional
            raise JetsegError("line {}: id and colour must be integers: {!r}".format(
                n + 1, line), path=path, fix=fix)
        names.append(row["name"].strip())
        colors.append(rgb)
        ids.append(cid)
    if not names:
        raise JetsegError("class table has no classes", path=path, fix=fix)
    if any(i is None for i in ids):
        return names, colors, None
    if len(set(ids)) != len(ids):
        raise JetsegError("class table gives one id to two classes", path=path, fix=fix)
    return names, colors, ids
