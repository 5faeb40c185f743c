"""Synthetic sky/ground scenes with a known horizon, for testing jetseg.autopilot.

    scene = make_scene(roll_deg=20, pitch=0.1, clutter=("trees", "noise"), seed=3)
    scene.classes   # HxW uint8: SKY=0, GROUND=1, OCCLUDER=2
    scene.image     # HxWx3 uint8 BGR picture of the same scene
    scene.roll_deg, scene.pitch    # the truth, in jetseg.autopilot's conventions

Conventions match jetseg.autopilot: continuous coordinates with pixel (i, j) covering
[i, i+1) x [j, j+1); a pixel is sky when its centre lies on the sky side of the line through
(W/2, H/2 - pitch*H) at angle roll (positive: right end higher). Rolls past +-90 degrees put
the sky below the line (an upside-down camera).

Clutter kinds (any combination; sizes are shares of the image):
  trees      ground-class cones standing on the horizon, up to 12 % of H tall, 3-8 % of W wide
  poles      thin ground-class poles (3 px) perpendicular to the horizon, up to 35 % of H tall
  noise      salt noise: 5 % of pixels flipped to the other class
  occlusion  a block of OCCLUDER (a wing / propeller), 25 % of W by 30 % of H, straddling
             the horizon near one side of the image
"""
import math

import numpy as np

SKY, GROUND, OCCLUDER = 0, 1, 2
NAMES = ["Sky", "Ground", "Wing"]
CLUTTER = ("trees", "poles", "noise", "occlusion")


class Scene(object):
    def __init__(self, classes, v, roll_deg, pitch, clutter, seed):
        self.classes = classes
        self._v = v
        self._image = None
        self._seed = seed
        self.roll_deg = roll_deg
        self.pitch = pitch
        self.clutter = clutter

    @property
    def image(self):
        """HxWx3 uint8 BGR picture of the scene (made on first use)."""
        if self._image is None:
            self._image = render_bgr(self.classes, self._v, np.random.RandomState(self._seed))
        return self._image

    @property
    def line_roll_deg(self):
        """The line's angle as estimate_horizon reports it, in [-90, 90]."""
        r = (self.roll_deg + 90.0) % 180.0 - 90.0
        return 90.0 if r == -90.0 else r


def frame_coords(roll_deg, pitch, width, height):
    """(u, v) per pixel centre: u along the line (right), v signed distance above it (px)."""
    r = math.radians(roll_deg)
    x = (np.arange(width) + 0.5 - width / 2.0)[None, :]
    y = (np.arange(height) + 0.5 - (height / 2.0 - pitch * height))[:, None]
    u = x * math.cos(r) - y * math.sin(r)          # direction (cos, -sin)
    v = -x * math.sin(r) - y * math.cos(r)         # "up" normal (-sin, -cos)
    return u, v


def make_scene(roll_deg=0.0, pitch=0.0, width=480, height=360, clutter=(), seed=0,
               noise=0.05, trees=8, poles=4):
    """A Scene with the horizon at ``roll_deg``/``pitch`` and the given clutter."""
    if isinstance(clutter, str):
        clutter = (clutter,) if clutter else ()
    unknown = set(clutter) - set(CLUTTER)
    if unknown:
        raise ValueError("unknown clutter {}; use {}".format(sorted(unknown), CLUTTER))
    rs = np.random.RandomState(seed)
    u, v = frame_coords(roll_deg, pitch, width, height)
    sky = v > 0
    if not clutter:
        return Scene(np.where(sky, SKY, GROUND).astype(np.uint8), v, roll_deg, pitch, (), seed)
    # where the line runs inside the image, along u
    on_line = np.abs(v) < 1.0
    if on_line.any():
        u_lo, u_hi = u[on_line].min(), u[on_line].max()
    else:
        u_lo, u_hi = -width / 2.0, width / 2.0
    r = math.radians(roll_deg)
    c = (width / 2.0, height / 2.0 - pitch * height)
    d, n = (math.cos(r), -math.sin(r)), (-math.sin(r), -math.cos(r))

    def carve(uc, half, tall, shape):
        """Turn sky to ground inside a cone/bar standing on the line at u=uc (bbox only)."""
        corners = [(uc + a, b) for a in (-half - 2, half + 2) for b in (-2, tall + 2)]
        xs = [c[0] + a * d[0] + b * n[0] for a, b in corners]
        ys = [c[1] + a * d[1] + b * n[1] for a, b in corners]
        x0, x1 = max(0, int(min(xs))), min(width, int(math.ceil(max(xs))) + 1)
        y0, y1 = max(0, int(min(ys))), min(height, int(math.ceil(max(ys))) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        uu, vv = u[y0:y1, x0:x1], v[y0:y1, x0:x1]
        lim = half * (1 - vv / tall) if shape == "cone" else half
        sky[y0:y1, x0:x1] &= ~((vv > -1) & (vv < tall) & (np.abs(uu - uc) < lim))

    if "trees" in clutter:
        for _ in range(trees):
            uc = rs.uniform(u_lo, u_hi)
            half = 0.5 * rs.uniform(0.03, 0.08) * width
            carve(uc, half, rs.uniform(0.04, 0.12) * height, "cone")
    if "poles" in clutter:
        for _ in range(poles):
            carve(rs.uniform(u_lo, u_hi), 1.5, rs.uniform(0.15, 0.35) * height, "bar")
    classes = np.where(sky, SKY, GROUND).astype(np.uint8)
    if "noise" in clutter:
        flip = rs.random_sample(classes.shape) < noise
        classes[flip] = 1 - classes[flip]
    if "occlusion" in clutter:
        bw, bh = int(0.25 * width), int(0.30 * height)
        # centre the block on the line near the left or right edge
        side = rs.randint(2)
        xc = 0.15 * width if side == 0 else 0.85 * width
        r = math.radians(roll_deg)
        yc = height / 2.0 - pitch * height - math.tan(r) * (xc - width / 2.0) \
            if abs(math.cos(r)) > 1e-6 else height / 2.0
        x0 = int(np.clip(xc - bw / 2.0, 0, width - bw))
        y0 = int(np.clip(yc - bh / 2.0, 0, height - bh))
        classes[y0:y0 + bh, x0:x0 + bw] = OCCLUDER
    return Scene(classes, v, roll_deg, pitch, tuple(clutter), seed)


def render_bgr(classes, v, rs):
    """A plausible BGR picture: blue sky brightening to the horizon, green-brown ground."""
    h, w = classes.shape
    img = np.empty((h, w, 3), np.float32)
    t = np.clip(np.abs(v) / max(h, w), 0, 1)[..., None]
    sky = np.array([235, 200, 170], np.float32) * (1 - t) + np.array([200, 120, 60]) * t
    ground = np.array([60, 110, 90], np.float32) * (1 - t) + np.array([40, 80, 50]) * t
    img[:] = ground
    m = classes == SKY
    img[m] = sky[m]
    img[classes == OCCLUDER] = (40, 40, 40)
    img += rs.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def grid(rolls=None, pitches=None):
    """The accuracy grid: roll -60..60 (5 degree steps), pitch -0.4..0.4 (0.1)."""
    rolls = np.arange(-60, 61, 5) if rolls is None else rolls
    pitches = np.round(np.arange(-0.4, 0.41, 0.1), 3) if pitches is None else pitches
    return [(float(r), float(p)) for r in rolls for p in pitches]
