"""The horizon: the sky/ground line of a class map, and its smoothing over frames.

    h = estimate_horizon(res, sky_classes=["Sky"])        # or res.classes + names=
    h.roll_deg, h.pitch, h.confidence, h.reason
    hf = HorizonFilter(); hf.update(h, t=res.captured_at)

Conventions (tests and autopilot code rely on them):
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

from jetseg.autopilot.classmap import class_ids, member, rounded, unpack
from jetseg.autopilot.linefit import boundary_points, coarse_line, robust_line
from jetseg.errors import JetsegError

PITCH_LIMIT = 10.0          # |pitch| clip for near-vertical lines, in image heights


def _weights(classes, sky_ids, ignore_ids):
    """int8 map: +1 sky, -1 ground (everything else), 0 ignored."""
    sky = member(classes, sky_ids)
    w = sky.astype(np.int8) * 2 - 1
    if ignore_ids:
        w[member(classes, ignore_ids)] = 0
    return w


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

    def scaled(self, width, height):
        """The same line in a ``width`` x ``height`` image of the same view (the frame a
        smaller class map was made for): continuous coordinates scale by width/W, height/H."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = self.width / float(width), self.height / float(height)
        line = {} if self.normal is None else \
            dict(normal=(self.normal[0] * sx, self.normal[1] * sy), rho=self.rho)
        return Horizon(width, height, confidence=self.confidence, reason=self.reason,
                       sky_fraction=self.sky_fraction, points=self.points,
                       inliers=self.inliers, **line)

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
            "roll_deg": rounded(self.roll_deg, 3), "pitch": rounded(self.pitch, 5),
            "confidence": rounded(self.confidence, 3), "reason": self.reason,
            "inverted": bool(self.inverted),
            "slope": rounded(self.slope, 6), "intercept": rounded(self.intercept, 3),
            "p0": None if self.p0 is None else [rounded(v, 2) for v in self.p0],
            "p1": None if self.p1 is None else [rounded(v, 2) for v in self.p1],
            "sky_fraction": rounded(self.sky_fraction, 4),
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
    classes, names = unpack(classes, names)
    H, W = classes.shape
    sky_ids = class_ids(sky_classes, names, "sky class")
    if not sky_ids:
        raise JetsegError("no sky classes given", fix="pass sky_classes=['Sky'] or class ids")
    ign_ids = [i for i in class_ids(ignore_classes, names, "ignored class") if i not in sky_ids]
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
    n0, rho0 = coarse_line(small, cs)

    # fine: one boundary point per column (or row), in the family the line is well posed in,
    # kept when near the coarse line, then a robust fit close to the coarse angle
    so = step // 2
    w = _weights(classes[so::step, so::step], sky_ids, ign_ids)
    P = boundary_points(w, step, so, n0)
    n_pts = len(P)
    thr = float(threshold) if threshold else max(2.0 * step, 0.01 * min(H, W))
    if len(P) >= 3:
        nrm, rho, inl = robust_line(P, thr, (n0, rho0))
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
    that arrive in a burst from a camera buffer) count as ``min_dt``. The returned
    Horizon's confidence is an exponential average of the measured confidences (decaying
    while coasting). beta=0 gives a plain exponential filter.
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

    def predict(self, t, width, height):
        """The filtered line carried forward to time ``t`` on its rates, the state left as
        it is (a frame the horizon is not measured on); None before the first usable
        measurement. Rates are not extrapolated past ``max_coast`` seconds."""
        if self.roll is None or self._t is None:
            return None
        dt = min(max(0.0, float(t) - self._t), self.max_coast)
        roll = _wrap180(self.roll + self.roll_rate * dt)
        pitch = max(-PITCH_LIMIT, min(PITCH_LIMIT, self.pitch + self.pitch_rate * dt))
        out = Horizon.from_angles(roll, pitch, width, height, inverted=self.inverted,
                                  confidence=self.confidence, reason="predicted")
        out.roll_deg, out.pitch = roll, pitch
        return out

    def _out(self, h, reason):
        pitch = max(-PITCH_LIMIT, min(PITCH_LIMIT, self.pitch))
        out = Horizon.from_angles(self.roll, pitch, h.width, h.height, inverted=self.inverted,
                                  confidence=self.confidence, reason=reason,
                                  sky_fraction=h.sky_fraction, points=h.points,
                                  inliers=h.inliers)
        out.roll_deg, out.pitch = self.roll, pitch     # exactly the state, no round trip
        return out
