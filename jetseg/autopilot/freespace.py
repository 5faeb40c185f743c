"""Free space: per-sector free fractions of the lower image and the heading to fly.

    s = free_space(res, free_classes=["Road"], sectors=9)
    s.fractions, s.sector, s.heading_deg, s.blocked

Bearings are for a pinhole camera with horizontal field of view ``hfov_deg`` (default
RPI_V2_HFOV_DEG, the Raspberry Pi camera v2 of Jetson Nano kits), positive to the right.
"""
import functools
import math

import numpy as np

from jetseg.autopilot.classmap import class_ids, member, rounded, unpack
from jetseg.errors import JetsegError

RPI_V2_HFOV_DEG = 62.2      # Raspberry Pi camera v2 (Jetson Nano kits), horizontal FOV


class FreeSpace(object):
    """Per-sector free fractions of the lower image and the suggested heading.

    fractions    share of free pixels per sector, left to right (sectors split the columns
                 equally)
    reach        per sector, the mean height of the free run going up from the bottom of
                 the band, as a share of the band (1: free all the way up)
    sector       index of the suggested sector; heading_deg its centre's bearing from the
                 optical axis (positive right, pinhole camera with ``hfov_deg``)
    sector_deg   bearing of each sector's centre
    blocked      True when no sector has at least ``min_free`` free (sector/heading still
                 point at the best one)
    """

    def __init__(self, fractions, reach, sector, heading_deg, sector_deg, blocked, reason,
                 rows, hfov_deg):
        self.fractions = fractions
        self.reach = reach
        self.sector = sector
        self.heading_deg = heading_deg
        self.sector_deg = sector_deg
        self.blocked = blocked
        self.reason = reason
        self.rows = rows
        self.hfov_deg = hfov_deg

    def as_dict(self):
        return {
            "fractions": [rounded(f, 4) for f in self.fractions],
            "reach": [rounded(f, 4) for f in self.reach],
            "sector": self.sector, "heading_deg": rounded(self.heading_deg, 2),
            "sector_deg": [rounded(a, 2) for a in self.sector_deg],
            "blocked": bool(self.blocked), "reason": self.reason,
            "rows": [rounded(r, 4) for r in self.rows], "hfov_deg": rounded(self.hfov_deg, 3),
        }

    def __repr__(self):
        return "FreeSpace(sector={}, heading_deg={:.1f}, blocked={}, fractions=[{}])".format(
            self.sector, self.heading_deg, self.blocked,
            ", ".join("{:.2f}".format(f) for f in self.fractions))


def bearing_deg(x, width, hfov_deg=RPI_V2_HFOV_DEG):
    """Bearing in degrees of image column x (continuous coords) for a pinhole camera."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.degrees(np.arctan((np.asarray(x, np.float64) - width / 2.0) / f))


@functools.lru_cache(maxsize=64)
def _sectors(W, sectors, hfov_deg):
    """(bearing of each sector's centre, first column of each, columns in each) for a map
    ``W`` wide: the same every frame, so made once per geometry (shared: not to be changed)."""
    edges = np.linspace(0, W, sectors + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    cuts = np.round(edges[:-1]).astype(np.int64)
    return ([float(a) for a in bearing_deg(centres, max(W, 1), hfov_deg)], cuts,
            np.diff(np.append(cuts, W)))


def free_space(classes, free_classes=("road",), sectors=9, names=None, rows=(0.5, 1.0),
               hfov_deg=RPI_V2_HFOV_DEG, min_free=0.5, smooth=True, centre_bias=0.02):
    """Free fraction per vertical sector of the lower image, and the best heading.

    classes      HxW class ids or a ``Segmentation``
    free_classes names or ids of classes that are safe to fly over / towards
    sectors      number of equal-width column sectors, left to right
    rows         (top, bottom) of the band looked at, as shares of the height (default the
                 lower half)
    hfov_deg     horizontal field of view for the bearing (62.2: Raspberry Pi camera v2)
    min_free     below this best fraction the result is ``blocked``
    smooth       score each sector with its neighbours (1-2-1), so a gap right next to an
                 obstacle is not preferred over one with room around it
    centre_bias  score penalty per unit of |bearing| / (hfov/2): among equals, fly straight
    """
    classes, names = unpack(classes, names)
    ids = class_ids(free_classes, names, "free class")
    H, W = classes.shape
    sectors = int(sectors)
    if sectors < 1:
        raise JetsegError("sectors={} must be at least 1".format(sectors), fix="use e.g. 9")
    top, bottom = float(rows[0]), float(rows[1])
    if not 0 <= top < bottom <= 1:
        raise JetsegError("rows={!r} is not a band of the image".format(rows),
                          fix="give (top, bottom) shares with 0 <= top < bottom <= 1")
    sector_deg, cuts, counts = _sectors(W, sectors, float(hfov_deg))
    r0 = int(round(top * H))
    r1 = max(r0 + 1, int(round(bottom * H)))
    band = classes[r0:r1]
    if band.size == 0 or W < sectors:
        return FreeSpace([0.0] * sectors, [0.0] * sectors, sectors // 2, sector_deg[sectors // 2],
                         list(sector_deg), True,
                         "class map too small for {} sectors".format(sectors),
                         (top, bottom), hfov_deg)
    free = member(band, ids).view(np.uint8)
    col = free.sum(axis=0, dtype=np.uint16 if band.shape[0] < 65536 else np.int64)
    frac = np.add.reduceat(col, cuts, dtype=np.int64) / (counts * float(band.shape[0]))
    blocked = free[::-1] == 0                          # from the bottom row up
    first = blocked.argmax(axis=0)                     # 0 also where nothing is blocked
    run = np.where(blocked[first, np.arange(W)], first, band.shape[0])
    reach = np.add.reduceat(run, cuts, dtype=np.int64) / (counts * float(band.shape[0]))
    score = frac.astype(np.float64)
    if smooth and sectors >= 3:
        pad = np.concatenate([score[:1], score, score[-1:]])
        score = 0.25 * pad[:-2] + 0.5 * pad[1:-1] + 0.25 * pad[2:]
        score = np.minimum(score, frac)
    half = max(1e-9, hfov_deg / 2.0)
    score = score - centre_bias * np.abs(np.asarray(sector_deg)) / half
    best = int(np.argmax(score))
    blocked = bool(frac.max() < min_free)
    reason = "ok" if not blocked else "no sector is {:.0f}% free".format(100 * min_free)
    return FreeSpace([float(f) for f in frac], [float(f) for f in reach], best,
                     sector_deg[best], list(sector_deg), blocked, reason, (top, bottom), hfov_deg)
