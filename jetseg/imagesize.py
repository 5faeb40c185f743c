"""An image's width and height from its header, without decoding it, and the pixel limit that
keeps a small board from decoding a picture it has no memory for.

A 30000x30000 PNG can be under a megabyte on disk and 2.7 GB as a BGR frame (more while it
is decoded and overlaid): ``read_image`` refuses images over ``max_pixels()`` before OpenCV
decodes them. Headers read here: PNG, JPEG, BMP, WebP, TIFF, PBM/PGM/PPM (every format
``IMAGE_EXTS`` names); anything else is left to OpenCV, whose own limit then applies.
"""
import os
import re
import struct

from jetseg.errors import JetsegError

DEFAULT_MEGAPIXELS = 64     # 3 bytes a pixel: 192 MB a frame; a 4 GB Jetson Nano copes
ENV = "JETSEG_MAX_MEGAPIXELS"
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # DHT, JPG and DAC are not frames


def max_pixels(megapixels=None):
    """The limit in pixels: ``megapixels`` if given, else $JETSEG_MAX_MEGAPIXELS, else
    DEFAULT_MEGAPIXELS; 0 (or less) means no limit (returned as None)."""
    value, what = megapixels, "max_megapixels"
    if value is None:
        value, what = os.environ.get(ENV), ENV
    if value is None or value == "":
        value = DEFAULT_MEGAPIXELS
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise JetsegError("{} {!r} is not a number of megapixels".format(what, value),
                          fix="give e.g. 100 (megapixels), or 0 for no limit")
    return int(value * 1e6) if value > 0 else None


def check_pixels(size, path, megapixels=None):
    """Raise a JetsegError when ``size`` (w, h) is over the limit (see ``max_pixels``)."""
    limit = max_pixels(megapixels)
    if size is None or limit is None or size[0] * size[1] <= limit:
        return
    raise JetsegError(
        "a {}x{} image ({:.0f} megapixels) is over the limit of {:g} megapixels; not "
        "decoded".format(size[0], size[1], size[0] * size[1] / 1e6, limit / 1e6), path=path,
        fix="shrink it, or raise the limit (--max-megapixels N, {}=N, or max_megapixels=N "
            "in Python) if this machine has the memory: 3 bytes a pixel for the frame "
            "alone".format(ENV))


def image_size(path):
    """(width, height) from the file's header, or None for a format not read here (or a
    header too damaged to say). Raises OSError when the file cannot be read."""
    with open(str(path), "rb") as f:
        head = f.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(f)
        if head[:2] == b"BM" and len(head) >= 26:
            if struct.unpack("<I", head[14:18])[0] == 12:       # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", head[18:22])
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(f, "<" if head[:1] == b"I" else ">")
        if re.match(br"P[1-6]\s", head):
            return _pnm_size(head + f.read(1024))
    return None


def _jpeg_size(f):
    f.seek(2)
    for _ in range(1000):                   # markers before the frame header: APPn, DQT, ...
        b = f.read(1)
        while b == b"\xff":
            b = f.read(1)
        if not b:
            return None
        marker = ord(b)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue                        # markers without a length
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in _JPEG_SOF:
            sof = f.read(5)
            if len(sof) < 5:
                return None
            h, w = struct.unpack(">HH", sof[1:5])
            return w, h
        f.seek(length - 2, 1)
    return None


def _webp_size(head):
    kind = head[12:16]
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and head[20:21] == b"\x2f":
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        w = struct.unpack("<I", head[24:27] + b"\0")[0] + 1
        h = struct.unpack("<I", head[27:30] + b"\0")[0] + 1
        return w, h
    return None


def _tiff_size(f, order):
    f.seek(4)
    f.seek(struct.unpack(order + "I", f.read(4))[0])
    raw = f.read(2)
    if len(raw) < 2:
        return None
    found = {}
    for _ in range(min(struct.unpack(order + "H", raw)[0], 1000)):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):               # ImageWidth, ImageLength: SHORT or LONG
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, entry[8:8 + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(head):
    m = re.match(br"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", head)
    return (int(m.group(1)), int(m.group(2))) if m else None
