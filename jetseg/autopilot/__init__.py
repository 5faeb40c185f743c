"""Signals an autopilot can use, computed from a class map: horizon, free space, gates.

    from jetseg import autopilot
    h = autopilot.estimate_horizon(res, sky_classes=["Sky"])        # or res.classes + names=
    h.roll_deg, h.pitch, h.confidence, h.reason
    s = autopilot.free_space(res, free_classes=["Road"], sectors=9)
    s.fractions, s.sector, s.heading_deg
    autopilot.check_gates(res, [autopilot.pull_up(["Sky"])])       # -> ["pull_up"] or []

Conventions (the interface of issue 7; tests rely on them):
  * Image coordinates are continuous: x right, y down, the image spans [0, W] x [0, H] and
    pixel (column i, row j) covers [i, i+1) x [j, j+1).
  * The horizon is the line separating the sky classes from every other (non-ignored) class.
  * ``roll_deg`` is the line's angle, positive when its right end is higher in the image than
    its left end: atan2(rise, run) in degrees, in [-90, 90].
  * ``pitch`` = (H/2 - y_c) / H with y_c the line's row at the centre column x = W/2:
    positive when the horizon is above the image centre (clipped to +-10 for a line so
    steep that y_c runs far outside the image).
  * ``confidence`` is in [0, 1]; no sky or no ground gives confidence 0 and a ``reason``,
    never an exception. Mistakes a user can fix (a class name the model does not have, an
    image where a class map belongs) raise JetsegError.

Everything here is vectorised numpy (no per-pixel Python) and runs on Python 3.6.
"""
import math

import numpy as np

from jetseg.errors import JetsegError

PITCH_LIMIT = 10.0          # |pitch| clip for near-vertical lines, in image heights
RPI_V2_HFOV_DEG = 62.2      # Raspberry Pi camera v2 (Jetson Nano kits), horizontal FOV


# ---- inputs ----------------------------------------------------------------------------
def _unpack(classes, names):
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


def _class_ids(spec, names, what):
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


def _member(classes, ids):
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


def _weights(classes, sky_ids, ignore_ids):
    """int8 map: +1 sky, -1 ground (everything else), 0 ignored."""
    sky = _member(classes, sky_ids)
    w = sky.astype(np.int8) * 2 - 1
    if ignore_ids:
        w[_member(classes, ignore_ids)] = 0
    return w


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


# ---- the horizon -----------------------------------------------------------------------
class Horizon(object):
    """The sky/ground line of one frame (or of a filter), in the module's conventions.

    roll_deg     line angle in degrees, [-90, 90], positive when the right end is higher
    pitch        (H/2 - y_c) / H, positive when the horizon is above the image centre
    confidence   0..1; 0 with a ``reason`` when there is no usable line
    reason       "ok" or why the estimate is weak or missing
    normal, rho  the line as {p : normal . p = rho}; sky lies on the side normal . p > rho
    slope, intercept   y = slope * x + intercept (None for a vertical line)
    p0, p1       where the line enters and leaves the image (None when it misses the image)
    inverted     True when the sky is below the line (camera rolled past 90 degrees)
    sky_fraction share of the (non-ignored) pixels that are sky
    points, inliers    boundary points used by the fit and how many agreed with the line
    """

    def __init__(self, width, height, normal=None, rho=None, confidence=0.0, reason="ok",
                 sky_fraction=None, points=0, inliers=0):
        self.width = int(width)
        self.height = int(height)
        self.confidence = float(confidence)
        self.reason = reason
        self.sky_fraction = sky_fraction
        self.points = int(points)
        self.inliers = int(inliers)
        self.normal = None
        self.rho = None
        self.roll_deg = 0.0
        self.pitch = 0.0
        self.inverted = False
        self.slope = None
        self.intercept = None
        self.p0 = self.p1 = None
        if normal is not None:
            self._set_line(normal, rho)

    @property
    def valid(self):
        return self.normal is not None and self.confidence > 0

    def _set_line(self, normal, rho):
        nx, ny = float(normal[0]), float(normal[1])
        norm = math.hypot(nx, ny)
        nx, ny, rho = nx / norm, ny / norm, float(rho) / norm
        self.normal, self.rho = (nx, ny), rho
        # direction along the line, pointing right (dx >= 0)
        dx, dy = -ny, nx
        if dx < 0 or (dx == 0 and dy > 0):
            dx, dy = -dx, -dy
        self.roll_deg = math.degrees(math.atan2(-dy, dx))
        # "up" for that roll is (-sin, -cos); sky on the other side means upside down
        r = math.radians(self.roll_deg)
        self.inverted = (nx * -math.sin(r) + ny * -math.cos(r)) < 0
        W, H = self.width, self.height
        if abs(ny) > 1e-12:
            self.slope = -nx / ny
            self.intercept = rho / ny
            y_c = self.slope * W / 2.0 + self.intercept
            self.pitch = max(-PITCH_LIMIT, min(PITCH_LIMIT, (H / 2.0 - y_c) / H))
        else:
            self.slope = self.intercept = None
            side = nx * W / 2.0 - rho          # which side of the vertical line the centre is
            self.pitch = 0.0 if side == 0 else math.copysign(PITCH_LIMIT, side * nx)
        self.p0, self.p1 = _clip_line(nx, ny, rho, W, H)

    @classmethod
    def from_angles(cls, roll_deg, pitch, width, height, inverted=False, **kw):
        """The line with this roll and pitch (the inverse of the conventions)."""
        r = math.radians(roll_deg)
        up = (-math.sin(r), -math.cos(r))
        y_c = height / 2.0 - pitch * height
        rho = up[0] * width / 2.0 + up[1] * y_c
        if inverted:
            up, rho = (-up[0], -up[1]), -rho
        return cls(width, height, normal=up, rho=rho, **kw)

    def y_at(self, x):
        """The line's row at column x (None for a vertical line)."""
        if self.slope is None:
            return None
        return self.slope * x + self.intercept

    def sky_side(self, x, y):
        """True where (x, y) (arrays fine) lies on the sky side of the line."""
        return self.normal[0] * np.asarray(x) + self.normal[1] * np.asarray(y) > self.rho

    def as_dict(self):
        """Plain JSON-ready values (rounded)."""
        return {
            "roll_deg": _r(self.roll_deg, 3), "pitch": _r(self.pitch, 5),
            "confidence": _r(self.confidence, 3), "reason": self.reason,
            "inverted": bool(self.inverted),
            "slope": _r(self.slope, 6), "intercept": _r(self.intercept, 3),
            "p0": None if self.p0 is None else [_r(v, 2) for v in self.p0],
            "p1": None if self.p1 is None else [_r(v, 2) for v in self.p1],
            "sky_fraction": _r(self.sky_fraction, 4),
            "points": self.points, "inliers": self.inliers,
            "width": self.width, "height": self.height,
        }

    def __repr__(self):
        return "Horizon(roll_deg={:.2f}, pitch={:.4f}, confidence={:.2f}, reason={!r})".format(
            self.roll_deg, self.pitch, self.confidence, self.reason)


def _clip_line(nx, ny, rho, W, H):
    """The two points where nx*x + ny*y = rho crosses the border of [0,W]x[0,H], or None."""
    pts = []
    if abs(ny) > 1e-12:
        for x in (0.0, float(W)):
            y = (rho - nx * x) / ny
            if -1e-9 <= y <= H + 1e-9:
                pts.append((x, min(max(y, 0.0), float(H))))
    if abs(nx) > 1e-12:
        for y in (0.0, float(H)):
            x = (rho - ny * y) / nx
            if -1e-9 <= x <= W + 1e-9:
                pts.append((min(max(x, 0.0), float(W)), y))
    uniq = []
    for p in pts:
        if all(abs(p[0] - q[0]) > 1e-6 or abs(p[1] - q[1]) > 1e-6 for q in uniq):
            uniq.append(p)
    if len(uniq) < 2:
        return None, None
    uniq.sort()
    return uniq[0], uniq[-1]


def _grid(shape, step, offset):
    """Sample centres (continuous coords) of a strided view along one axis length."""
    return offset + np.arange(shape) * step + 0.5


def _half_plane(w, step, th):
    """Best half-plane for the sky on a small weight map, over normal angles ``th``.

    For each angle, histogram the signed weights (+1 sky, -1 ground) along the normal
    (cos, sin) and pick the threshold (and side) that puts the most sky on one side and the
    most ground on the other. Returns (normal towards the sky, rho, angle)."""
    off = step // 2
    ys, xs = np.nonzero(w)
    wv = w[ys, xs].astype(np.float64)
    X = off + xs * float(step) + 0.5
    Y = off + ys * float(step) + 0.5
    c, s = np.cos(th), np.sin(th)
    proj = c[:, None] * X[None, :] + s[:, None] * Y[None, :]
    lo = proj.min(axis=1)
    nb = int(math.ceil(math.hypot(w.shape[0] + 1, w.shape[1] + 1))) + 2
    b = ((proj - lo[:, None]) * (1.0 / step)).astype(np.int64)
    b += (np.arange(len(th)) * nb)[:, None]
    hist = np.bincount(b.ravel(), weights=np.tile(wv, len(th)),
                       minlength=len(th) * nb).reshape(len(th), nb)
    cum = np.cumsum(hist, axis=1)              # sum of weights in bins <= t
    pos = wv.sum() - cum                       # sky on the + side of the threshold
    ia, it = np.unravel_index(np.argmax(pos), pos.shape)
    ja, jt = np.unravel_index(np.argmax(cum), cum.shape)
    if pos[ia, it] >= cum[ja, jt]:
        a, t, sign = ia, it, 1.0
    else:
        a, t, sign = ja, jt, -1.0
    rho = lo[a] + (t + 1) * step               # upper edge of bin t
    return np.array([sign * c[a], sign * s[a]]), sign * rho, th[a]


def _coarse_line(w, step):
    """Area-based first guess: 7.5 degree steps over 180 degrees, then 1 degree steps.

    It says on which side the sky is and roughly where the line runs: within a degree or
    two under trees, poles and noise, but a big ground-class occluder straddling the line
    (a wing) can pull it 10+ degrees, so the fit below only uses it as a loose prior.
    """
    _, _, a = _half_plane(w, step, np.arange(24) * (math.pi / 24))
    return _half_plane(w, step, a + np.radians(np.arange(-4.0, 4.5, 1.0)))[:2]


def _splits(w, step, offset):
    """Per column of ``w`` (sky on the low-index side): the best boundary and its gain.

    Returns (boundary coordinate along axis 0, column index, valid) where the boundary is
    the split maximising agreement (sky above, ground below) in that column. Columns the
    line does not cross, or whose split is ambiguous, are not valid.
    """
    n = w.shape[0]
    c = np.empty((n + 1, w.shape[1]), np.int32)
    c[0] = 0
    np.cumsum(w, axis=0, dtype=np.int32, out=c[1:])
    k1 = np.argmax(c, axis=0)
    k2 = n - np.argmax(c[::-1], axis=0)         # last maximum
    cols = np.arange(w.shape[1])
    best = c[k1, cols]
    gain = best - np.maximum(c[0], c[n])
    valid = (k1 > 0) & (k2 < n) & (gain >= 2) & (k2 - k1 <= 2)
    k = 0.5 * (k1 + k2)
    pos = offset + k * step - step / 2.0 + 0.5
    return pos, cols, valid


def _boundary_points(w, step, offset, n0):
    """One boundary point (x, y) per column, or per row when the line is steeper than 45
    degrees (``n0``, the coarse normal towards the sky, decides; it also says on which side
    the sky is)."""
    if abs(n0[1]) >= abs(n0[0]):                  # column-wise; sky at the top if n0y < 0
        pos, idx, ok = _splits(w if n0[1] < 0 else -w, step, offset)
        return np.stack([_grid(w.shape[1], step, offset)[idx[ok]], pos[ok]], axis=1)
    wt = w.T                                      # row-wise; sky on the left if n0x < 0
    pos, idx, ok = _splits(wt if n0[0] < 0 else -wt, step, offset)
    return np.stack([pos[ok], _grid(w.shape[0], step, offset)[idx[ok]]], axis=1)


def _tls(P, wts):
    """Weighted total-least-squares line through points P (n x 2): (normal, rho)."""
    sw = wts.sum()
    m = (P * wts[:, None]).sum(axis=0) / sw
    d = P - m
    cxx = (wts * d[:, 0] * d[:, 0]).sum()
    cyy = (wts * d[:, 1] * d[:, 1]).sum()
    cxy = (wts * d[:, 0] * d[:, 1]).sum()
    th = 0.5 * math.atan2(2.0 * cxy, cxx - cyy)   # principal (line) direction
    nrm = np.array([-math.sin(th), math.cos(th)])
    return nrm, float(nrm.dot(m))


def _robust_line(P, thr, init, max_turn_deg=30.0, seed=0, trials=96):
    """RANSAC on point pairs, then Tukey-weighted TLS: (normal, rho, inlier mask).

    ``init`` = (normal towards the sky, rho) of the coarse line. Candidates more than
    ``max_turn_deg`` from it are not considered. The RANSAC cost (MSAC) is asymmetric:
    clutter of ground classes (trees, poles, a wing) only ever puts boundary points on the
    sky side of the true line, so a candidate that leaves many points on its ground side
    (beyond ``thr``) is charged 9x more for them than for points on its sky side.
    """
    n = len(P)
    rs = np.random.RandomState(seed)
    i = rs.randint(n, size=trials)
    j = rs.randint(n, size=trials)
    d = P[j] - P[i]
    L = np.sqrt((d * d).sum(axis=1))
    keep = L > 1.0
    i, d, L = i[keep], d[keep], L[keep]
    N = np.stack([-d[:, 1], d[:, 0]], axis=1) / L[:, None]
    n0 = np.asarray(init[0], np.float64)
    N *= np.where(N.dot(n0) < 0, -1.0, 1.0)[:, None]     # every normal towards the sky
    rho = (N * P[i]).sum(axis=1)
    N = np.vstack([N, n0[None, :]])
    rho = np.append(rho, init[1])
    R = P.dot(N.T) - rho[None, :]
    cost = np.minimum(R * R, np.where(R < 0, 9.0, 1.0) * (thr * thr)).sum(axis=0)
    cost[N.dot(n0) < math.cos(math.radians(max_turn_deg))] = np.inf
    b = int(np.argmin(cost))
    inl = np.abs(R[:, b]) < thr
    if inl.sum() < 2:
        return N[b], rho[b], inl
    nrm, r0 = _tls(P, inl.astype(np.float64))
    for _ in range(3):
        res = P.dot(nrm) - r0
        a = np.abs(res)
        scale = max(1.4826 * np.median(a[a < 3 * thr]) if (a < 3 * thr).any() else thr,
                    thr / 4.0)
        u = a / (4.685 * scale)
        wts = np.where(u < 1, (1 - u * u) ** 2, 0.0)
        if wts.sum() < 1e-9 or (wts > 0).sum() < 2:
            break
        nrm, r0 = _tls(P, wts)
    inl = np.abs(P.dot(nrm) - r0) < thr
    return nrm, r0, inl


def estimate_horizon(classes, sky_classes=("sky",), names=None, ignore_classes=(), step=2,
                     min_area=0.002, coarse_size=80, threshold=None):
    """Estimate the horizon (sky/ground line) of one class map; see the module conventions.

    classes        HxW class ids (``res.classes``) or a ``Segmentation`` (names come with it)
    sky_classes    names (looked up in ``names``, case-insensitively if unambiguous) or ids
    names          the model's class names (``seg.classes``); needed for names
    ignore_classes classes that are neither sky nor ground (e.g. the drone's own propeller
                   or landing gear): they do not pull the line either way
    step           sample every ``step``-th row and column for the boundary fit (2 at
                   480x360 keeps roll within 0.1 degree and is 4x cheaper than 1)
    min_area       a sky (or ground) share below this counts as none
    coarse_size    long side of the map the coarse half-plane search runs on
    threshold      RANSAC inlier distance in pixels (default: max(2*step, 1% of min(W, H)))

    Method: a coarse half-plane search on a small map gives the sky side and the rough
    angle; per column (or per row, for lines steeper than 45 degrees) the split with the
    most sky above and ground below gives one boundary point; RANSAC then Tukey-weighted
    total least squares fit the line, so trees, poles, noise and partial occlusion do not
    tilt it. ``confidence`` = (share of boundary points on the line) x (how well the line
    separates sky from ground) x (enough points).
    """
    classes, names = _unpack(classes, names)
    H, W = classes.shape
    sky_ids = _class_ids(sky_classes, names, "sky class")
    if not sky_ids:
        raise JetsegError("no sky classes given", fix="pass sky_classes=['Sky'] or class ids")
    ign_ids = [i for i in _class_ids(ignore_classes, names, "ignored class") if i not in sky_ids]
    if H == 0 or W == 0:
        return Horizon(W, H, confidence=0.0, reason="empty class map")
    step = max(1, int(step))

    # coarse: half-plane search on a small map
    cs = max(1, int(math.ceil(max(H, W) / float(coarse_size))))
    co = cs // 2
    small = _weights(classes[co::cs, co::cs], sky_ids, ign_ids)
    n_sky = int((small > 0).sum())
    n_gnd = int((small < 0).sum())
    n_all = n_sky + n_gnd
    sky_frac = n_sky / float(n_all) if n_all else None
    if n_all == 0:
        return Horizon(W, H, reason="every pixel is an ignored class", sky_fraction=sky_frac)
    if n_sky <= min_area * n_all:
        return Horizon(W, H, reason="no sky in view", sky_fraction=sky_frac)
    if n_gnd <= min_area * n_all:
        return Horizon(W, H, reason="no ground in view", sky_fraction=sky_frac)
    n0, rho0 = _coarse_line(small, cs)

    # fine: one boundary point per column (or row), in the family the line is well posed in,
    # kept when near the coarse line, then a robust fit close to the coarse angle
    so = step // 2
    w = _weights(classes[so::step, so::step], sky_ids, ign_ids)
    P = _boundary_points(w, step, so, n0)
    n_pts = len(P)
    thr = float(threshold) if threshold else max(2.0 * step, 0.01 * min(H, W))
    if len(P) >= 3:
        nrm, rho, inl = _robust_line(P, thr, (n0, rho0))
        if nrm.dot(n0) < 0:                        # orient the normal towards the sky
            nrm, rho = -nrm, -rho
        n_in = int(inl.sum())
        reason = "ok"
    else:
        nrm, rho, n_in = n0, rho0, 0
        reason = "too few boundary points; coarse fit only"

    # confidence: does the line separate sky from ground, and do the points agree?
    ys = co + np.arange(small.shape[0]) * cs + 0.5
    xs = co + np.arange(small.shape[1]) * cs + 0.5
    side = (nrm[0] * xs[None, :] + nrm[1] * ys[:, None]) > rho
    wrong = int(((small > 0) & ~side).sum() + ((small < 0) & side).sum())
    sep = max(0.0, 1.0 - wrong / float(min(n_sky, n_gnd)))
    h = Horizon(W, H, normal=nrm, rho=rho, sky_fraction=sky_frac, points=n_pts, inliers=n_in)
    if h.p0 is None:
        support = 0.0
    else:   # inliers against the columns (rows) the line crosses; half of them seen is plenty
        axis = 0 if abs(nrm[1]) >= abs(nrm[0]) else 1
        crossed = max(1.0, abs(h.p1[axis] - h.p0[axis]) / step)
        support = min(1.0, n_in / (0.5 * crossed)) * min(1.0, n_in / 8.0)
    conf = sep * support if len(P) >= 3 else 0.25 * sep
    if conf < 0.3 and reason == "ok":
        reason = "weak: sky/ground boundary is not a straight line"
    h.confidence, h.reason = min(1.0, max(0.0, conf)), reason
    if h.inverted and reason == "ok":
        h.reason = "ok (sky below the line: camera upside down?)"
    return h


def _wrap180(a):
    """Axial angle difference wrapped into [-90, 90)."""
    return (a + 90.0) % 180.0 - 90.0


class HorizonFilter(object):
    """Alpha-beta smoothing of roll and pitch over frames, weighted by confidence.

        hf = HorizonFilter(alpha=0.5, beta=0.1)
        for res in stream:
            h = hf.update(autopilot.estimate_horizon(res, ["Sky"]), t=res.captured_at)

    Each update moves the estimate by ``alpha * confidence`` of the innovation (and the rate
    by ``beta * confidence``), so a confidence-0 frame only coasts on the predicted rate.
    Roll is a line angle: 89 and -89 degrees are 2 degrees apart, not 178. Measurements
    below ``min_confidence`` are ignored; after ``max_coast`` seconds (or frames, without
    ``t``) without one the rates are zeroed. Time steps shorter than ``min_dt`` (frames
    that arrive in a burst from a camera buffer) count as ``min_dt``. The returned Horizon's confidence is an
    exponential average of the measured confidences (decaying while coasting).
    beta=0 gives a plain exponential filter.
    """

    def __init__(self, alpha=0.5, beta=0.1, min_confidence=0.2, max_coast=1.0, min_dt=1.0 / 120):
        if not (0 < alpha <= 1) or not (0 <= beta < 2):
            raise JetsegError("HorizonFilter gains alpha={}, beta={} are unstable".format(
                alpha, beta), fix="use 0 < alpha <= 1 and 0 <= beta < 2 (e.g. 0.5, 0.1)")
        self.alpha, self.beta = float(alpha), float(beta)
        self.min_confidence = float(min_confidence)
        self.max_coast = float(max_coast)
        self.min_dt = float(min_dt)     # frames closer than this (buffered bursts) do not
        self.reset()                    # blow the rate estimate up

    def reset(self):
        self.roll = self.pitch = None
        self.roll_rate = self.pitch_rate = 0.0
        self.confidence = 0.0
        self.inverted = False
        self._t = None
        self._t_seen = None
        self._n = 0

    def update(self, h, t=None):
        """Fold in one Horizon (from estimate_horizon); returns the smoothed Horizon."""
        floor = 1e-6 if t is None else self.min_dt
        t = float(self._n if t is None else t)
        self._n += 1
        dt = 1.0 if self._t is None else max(floor, t - self._t)
        self._t = t
        c = float(h.confidence) if h.normal is not None else 0.0
        usable = c >= self.min_confidence
        if self.roll is None:
            if not usable:
                return Horizon(h.width, h.height, reason="no horizon yet: " + h.reason)
            self.roll, self.pitch, self.confidence = h.roll_deg, h.pitch, c
            self.inverted, self._t_seen = h.inverted, t
            return self._out(h, "filtered (first)")
        # predict
        roll_p = _wrap180(self.roll + self.roll_rate * dt)
        pitch_p = self.pitch + self.pitch_rate * dt
        if usable:
            ga, gb = self.alpha * c, self.beta * c
            e_r = _wrap180(h.roll_deg - roll_p)
            e_p = h.pitch - pitch_p
            self.roll = _wrap180(roll_p + ga * e_r)
            self.pitch = pitch_p + ga * e_p
            self.roll_rate += gb * e_r / dt
            self.pitch_rate += gb * e_p / dt
            self.confidence += self.alpha * (c - self.confidence)
            self.inverted, self._t_seen = h.inverted, t
            reason = "filtered"
        else:
            self.roll, self.pitch = roll_p, pitch_p
            self.confidence *= (1 - self.alpha)
            if t - self._t_seen > self.max_coast:
                self.roll_rate = self.pitch_rate = 0.0
            reason = "coasting: " + h.reason
        return self._out(h, reason)

    def _out(self, h, reason):
        pitch = max(-PITCH_LIMIT, min(PITCH_LIMIT, self.pitch))
        out = Horizon.from_angles(self.roll, pitch, h.width, h.height, inverted=self.inverted,
                                  confidence=self.confidence, reason=reason,
                                  sky_fraction=h.sky_fraction, points=h.points,
                                  inliers=h.inliers)
        out.roll_deg, out.pitch = self.roll, pitch     # exactly the state, no round trip
        return out


# ---- free space ------------------------------------------------------------------------
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
            "fractions": [_r(f, 4) for f in self.fractions],
            "reach": [_r(f, 4) for f in self.reach],
            "sector": self.sector, "heading_deg": _r(self.heading_deg, 2),
            "sector_deg": [_r(a, 2) for a in self.sector_deg],
            "blocked": bool(self.blocked), "reason": self.reason,
            "rows": [_r(r, 4) for r in self.rows], "hfov_deg": _r(self.hfov_deg, 3),
        }

    def __repr__(self):
        return "FreeSpace(sector={}, heading_deg={:.1f}, blocked={}, fractions=[{}])".format(
            self.sector, self.heading_deg, self.blocked,
            ", ".join("{:.2f}".format(f) for f in self.fractions))


def bearing_deg(x, width, hfov_deg=RPI_V2_HFOV_DEG):
    """Bearing in degrees of image column x (continuous coords) for a pinhole camera."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.degrees(np.arctan((np.asarray(x, np.float64) - width / 2.0) / f))


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
    classes, names = _unpack(classes, names)
    ids = _class_ids(free_classes, names, "free class")
    H, W = classes.shape
    sectors = int(sectors)
    if sectors < 1:
        raise JetsegError("sectors={} must be at least 1".format(sectors), fix="use e.g. 9")
    top, bottom = float(rows[0]), float(rows[1])
    if not 0 <= top < bottom <= 1:
        raise JetsegError("rows={!r} is not a band of the image".format(rows),
                          fix="give (top, bottom) shares with 0 <= top < bottom <= 1")
    edges = np.linspace(0, W, sectors + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    sector_deg = [float(a) for a in bearing_deg(centres, max(W, 1), hfov_deg)]
    r0 = int(round(top * H))
    r1 = max(r0 + 1, int(round(bottom * H)))
    band = classes[r0:r1]
    if band.size == 0 or W < sectors:
        return FreeSpace([0.0] * sectors, [0.0] * sectors, sectors // 2, sector_deg[sectors // 2],
                         sector_deg, True, "class map too small for {} sectors".format(sectors),
                         (top, bottom), hfov_deg)
    free = _member(band, ids)
    col = free.sum(axis=0, dtype=np.int64)
    cuts = np.round(edges[:-1]).astype(np.int64)
    counts = np.diff(np.append(cuts, W))
    frac = np.add.reduceat(col, cuts) / (counts * float(band.shape[0]))
    blocked_px = ~free[::-1]                           # from the bottom row up
    run = np.where(blocked_px.any(axis=0), np.argmax(blocked_px, axis=0), band.shape[0])
    reach = np.add.reduceat(run, cuts) / (counts * float(band.shape[0]))
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
                     sector_deg[best], sector_deg, blocked, reason, (top, bottom), hfov_deg)


# ---- class-fraction gates --------------------------------------------------------------
def class_fractions(classes, names=None):
    """{name: share of pixels} from a Segmentation, a class map + names, or a dict as is."""
    if isinstance(classes, dict):
        return classes
    if hasattr(classes, "class_fractions") and hasattr(classes, "segmenter"):
        return classes.class_fractions()
    classes, names = _unpack(classes, names)
    if names is None:
        raise JetsegError("class fractions of a bare class map need the class names",
                          fix="pass names=seg.classes or the Segmentation itself")
    n = len(names)
    counts = np.bincount(classes.ravel(), minlength=n)[:n]
    total = float(max(1, classes.size))
    return dict((str(name), c / total) for name, c in zip(names, counts.tolist()))


class Gate(object):
    """A rule on class fractions that names an action when it fires.

        Gate("pull_up", classes=["Sky"], below=0.10)     # sky under 10 %: pull up
        Gate("land_here", classes=["Grass"], above=0.6)
        gate.check(res.class_fractions())                 # True / False

    ``classes`` are names (case-insensitive) whose shares are summed; the gate fires when
    the sum is above ``above``, below ``below``, or, with both given, between them.
    """

    def __init__(self, action, classes, above=None, below=None, message=None):
        if above is None and below is None:
            raise JetsegError("gate {!r} has no threshold".format(action),
                              fix="give above=0.9 and/or below=0.1 (shares of the frame)")
        if isinstance(classes, str):
            classes = [classes]
        self.action = action
        self.classes = list(classes)
        self.above = above
        self.below = below
        self.message = message or self._describe()

    def _describe(self):
        what = "+".join(str(c) for c in self.classes)
        parts = []
        if self.above is not None:
            parts.append("> {:.0f}%".format(100 * self.above))
        if self.below is not None:
            parts.append("< {:.0f}%".format(100 * self.below))
        return "{} {}: {}".format(what, " and ".join(parts), self.action)

    def fraction(self, fractions):
        """Summed share of the gate's classes in ``fractions`` ({name: share})."""
        total = 0.0
        keys = dict((str(k).lower(), k) for k in fractions)
        for c in self.classes:
            key = c if c in fractions else keys.get(str(c).lower())
            if key is None:
                raise JetsegError("gate {!r}: class {!r} is not among the class fractions"
                                  .format(self.action, c),
                                  fix="use one of: " + ", ".join(str(k) for k in fractions))
            total += float(fractions[key])
        return total

    def check(self, fractions):
        f = self.fraction(fractions)
        ok = True
        if self.above is not None:
            ok = ok and f > self.above
        if self.below is not None:
            ok = ok and f < self.below
        return ok

    def __repr__(self):
        return "Gate({!r}: {})".format(self.action, self.message)


def pull_up(sky_classes=("Sky",), ground_share=0.9):
    """Ready rule: the ground (everything but sky) fills more than 90 % of the view."""
    return Gate("pull_up", sky_classes, below=1.0 - ground_share,
                message="ground fills > {:.0f}% of the view: pull up".format(100 * ground_share))


def check_gates(fractions, gates, names=None):
    """The actions of the gates that fire, in the order given.

    fractions   {name: share} (``res.class_fractions()``), a Segmentation, or a class map
                with ``names``
    """
    fr = class_fractions(fractions, names)
    return [g.action for g in gates if g.check(fr)]


# obstacle distances (the flat-ground camera model); MAVLink lives in jetseg.autopilot.mavlink
from jetseg.autopilot.obstacles import (CameraGeometry, ObstacleDistances,  # noqa: E402,F401
                                        Obstacles)
