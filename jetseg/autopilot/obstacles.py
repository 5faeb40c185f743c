"""Obstacle distances from a class map: segmentation as a proximity sensor.

    from jetseg import autopilot
    cam = autopilot.CameraGeometry(height_m=1.5, pitch_deg=-10, hfov_deg=62.2)
    od = autopilot.ObstacleDistances(cam, free_classes=["Road"], names=seg.classes)
    obs = od.measure(res)                  # res: a Segmentation (or classes + names=)
    obs.distances_cm, obs.nearest_m, obs.as_dict()
    od.measure(res, **link.vehicle.live())  # roll, pitch and height from the flight controller

Model: a pinhole camera (``hfov_deg``/``vfov_deg`` or a calibration's fx, fy, cx, cy) at
``height_m`` above flat ground, turned by its mount and the vehicle's roll and pitch. Along
every bearing the camera sees, the ground is followed outward from the nearest point in
view (in the image: up from the bottom edge along the line of that bearing, which is a
column when the camera is level) in 1 % range steps while its pixels are free classes; the
first pixel of another class is the obstacle's foot. Ground points never project above the
horizon, so no pixel at or above it counts as free. Bearings are binned into the 72
sectors of MAVLink's OBSTACLE_DISTANCE (sector i centred on ``angle_offset + i *
increment`` degrees, body FRD: 0 forward, positive to the right) and each sector gets:

    the nearest obstacle in cm            clipped to [min_distance, max_distance]; a foot
                                          below the view counts as min_distance
    max_distance + 1                      free ground up to the horizon or the far limit
    65535 (UINT16_MAX)                    outside the view, or no ground seen

``min_distance`` is the nearest ground the camera sees (its bottom edge), ``max_distance``
the nearer of ``max_range_m`` and the farthest ground seen up to the top edge. One image row
spans about (h^2 + r^2) / (h * fy) metres of ground at range r (h: height, fy: focal length
in pixels): 0.7 m at 20 m for a camera 1.5 m up with 360 rows over a 48.8 degree vfov, so
the far limit defaults to 20 m.

Angles are degrees with aerospace signs: pitch positive nose-up (a camera tilted down has a
negative pitch), roll positive right side down, yaw positive to the right.
"""
import math

import numpy as np

from jetseg.autopilot.camera import CameraGeometry, finite, load_calibration, rotation
from jetseg.autopilot.classmap import class_ids, member, unpack
from jetseg.errors import JetsegError

__all__ = ["CameraGeometry", "load_calibration", "rotation", "Obstacles", "ObstacleDistances",
           "UNKNOWN_CM", "SECTORS", "MAX_CM"]

UNKNOWN_CM = 65535              # UINT16_MAX: OBSTACLE_DISTANCE's "no information" value
SECTORS = 72                    # OBSTACLE_DISTANCE.distances[72]
MAX_CM = 65533                  # so that max_distance + 1 stays below UINT16_MAX


class Obstacles(object):
    """One frame's OBSTACLE_DISTANCE content plus where its geometry came from.

    distances_cm        72 uint16 (see the module doc for the sentinels)
    increment_deg, angle_offset_deg, min_distance_cm, max_distance_cm   as in the message
    nearest_m, nearest_bearing_deg     the closest obstacle (None when there is none)
    roll_deg, pitch_deg, height_m      vehicle attitude and camera height used
    attitude_source, height_source     where they came from ("ATTITUDE", "DISTANCE_SENSOR",
                                       "GLOBAL_POSITION_INT.relative_alt", "configured", ...)
    bearings            (bearing_deg, range_m) of every bearing looked along: the obstacle
                        range, inf (clear) or nan (not judged)
    reason              "ok" or why every sector is unknown
    """

    def __init__(self, distances_cm, increment_deg, angle_offset_deg, min_cm, max_cm,
                 roll_deg, pitch_deg, height_m, attitude_source, height_source,
                 bearings=None, reason="ok"):
        self.distances_cm = distances_cm
        self.increment_deg = float(increment_deg)
        self.angle_offset_deg = float(angle_offset_deg)
        self.min_distance_cm, self.max_distance_cm = int(min_cm), int(max_cm)
        self.roll_deg, self.pitch_deg, self.height_m = roll_deg, pitch_deg, height_m
        self.attitude_source, self.height_source = attitude_source, height_source
        self.bearings = bearings
        self.reason = reason
        hit = distances_cm <= self.max_distance_cm
        self.nearest_m = self.nearest_bearing_deg = None
        if hit.any():
            i = int(np.argmin(np.where(hit, distances_cm, UNKNOWN_CM)))
            self.nearest_m = distances_cm[i] / 100.0
            self.nearest_bearing_deg = self.bearing_deg(i)

    def bearing_deg(self, sector):
        """Centre of ``sector`` in degrees, wrapped into [-180, 180)."""
        a = self.angle_offset_deg + sector * self.increment_deg
        return (a + 180.0) % 360.0 - 180.0

    def as_dict(self):
        r = lambda x, nd=3: None if x is None else round(float(x), nd)   # noqa: E731
        return {
            "distances_cm": np.asarray(self.distances_cm).tolist(),
            "increment_deg": r(self.increment_deg, 6),
            "angle_offset_deg": r(self.angle_offset_deg, 6),
            "min_distance_cm": self.min_distance_cm, "max_distance_cm": self.max_distance_cm,
            "nearest_m": r(self.nearest_m, 2),
            "nearest_bearing_deg": r(self.nearest_bearing_deg, 2),
            "roll_deg": r(self.roll_deg, 2), "pitch_deg": r(self.pitch_deg, 2),
            "height_m": r(self.height_m, 3), "attitude_source": self.attitude_source,
            "height_source": self.height_source, "reason": self.reason,
        }

    def __repr__(self):
        return "Obstacles(nearest_m={}, bearing={}, height={} ({}), attitude {})".format(
            self.nearest_m, self.nearest_bearing_deg, self.height_m, self.height_source,
            self.attitude_source)


class ObstacleDistances(object):
    """Per-sector obstacle distances of class maps seen by ``camera``; see the module doc.

    free_classes   names or ids of the ground one can drive or fly low over (Road, Grass)
    increment_deg  sector width: 5 (default) spreads the 72 sectors over the whole circle
                   as PX4 reads them (it indexes up to 360 / increment sectors), the ones
                   outside the view UINT16_MAX; "fov" spreads them over the camera's
                   horizontal view (finer; ArduPilot only)
    max_range_m    far limit of the distances (the flat-ground model's rows get coarse)
    """

    def __init__(self, camera, free_classes, names=None, increment_deg=5.0, max_range_m=20.0):
        self.camera = camera
        self.names = None if names is None else list(names)
        self.free_classes = free_classes
        if not _as_list(free_classes):
            raise JetsegError("obstacle distances need free classes",
                              fix="name the ground classes, e.g. --free-classes Road,Grass")
        self._ids = self._view = None
        if self.names is not None:
            self._free_ids(self.names)                  # unknown names fail now
        self.fov_layout = str(increment_deg).lower() == "fov"
        if not self.fov_layout:
            self.increment_deg = finite(increment_deg, "sector increment", 5.0, 90.0,
                                        fix="give 5..90 degrees (5: 72 x 5 = the whole "
                                            "circle) or 'fov'")
        self.max_range_m = finite(max_range_m, "maximum range", 0.1, MAX_CM / 100.0,
                                  fix="give metres, e.g. 20")

    @staticmethod
    def _key(names):
        return None if names is None else tuple(names)

    def _free_ids(self, names):
        if self._ids is None or self._ids[0] != self._key(names):
            self._ids = (self._key(names), class_ids(self.free_classes, names, "free class"))
        return self._ids[1]

    def layout(self, width, height):
        """(increment, angle_offset) in degrees for a class map of this size."""
        if not self.fov_layout:
            return self.increment_deg, -180.0
        fx, _, cx, _ = self.camera.intrinsics(width, height)
        left = math.degrees(math.atan2(-cx, fx))
        right = math.degrees(math.atan2(width - cx, fx))
        inc = (right - left) / SECTORS
        return inc, self.camera.yaw_deg + left + inc / 2.0

    def measure(self, classes, names=None, roll_deg=None, pitch_deg=None, height_m=None,
                attitude_source=None, height_source=None, frame_size=None):
        """Obstacles of one class map (or Segmentation). Vehicle ``roll_deg``/``pitch_deg``
        default to level, ``height_m`` to the camera's configured height; the sources name
        where live values came from (``MavlinkLink.vehicle.live()`` gives all five).
        ``frame_size`` (width, height): the frame a smaller class map (the net's output)
        was made from, whose pixels the lens's field of view describes."""
        classes, names = unpack(classes, names if names is not None else self.names)
        ids = self._free_ids(names)
        H, W = classes.shape
        inc, offset = self.layout(W, H)
        if roll_deg is None or pitch_deg is None:
            roll_deg, pitch_deg, attitude_source = 0.0, 0.0, "configured (level)"
        if height_m is None:
            height_m, height_source = self.camera.height_m, "configured"
        out = np.full(SECTORS, UNKNOWN_CM, np.uint16)
        args = (roll_deg, pitch_deg, height_m, attitude_source, height_source)
        if height_m is None or not height_m > 0 or H == 0 or W == 0:
            return Obstacles(out, inc, offset, 0, 0, *args,
                             reason="no camera height: give --camera-height or send "
                                    "DISTANCE_SENSOR / GLOBAL_POSITION_INT on the link")
        key = (W, H, frame_size, float(roll_deg), float(pitch_deg), float(height_m), inc,
               offset)
        if self._view is None or self._view[0] != key:      # the same geometry: reuse it
            fw, fh = frame_size or (W, H)
            fx, fy, cx, cy = self.camera.intrinsics(fw, fh)
            K = (fx * W / fw, fy * H / fh, cx * W / fw, cy * H / fh)
            R = rotation(roll_deg, pitch_deg).dot(self.camera.mount)
            self._view = (key, _Ladder(_view(R, K, W, H, height_m, self.max_range_m, inc),
                                       W, self.max_range_m, inc, offset))
        lad = self._view[1]
        if lad.reason:
            return Obstacles(out, inc, offset, 0, 0, *args, reason=lad.reason)
        # per frame: which ladder pixels are free, and where each bearing's run stops
        stop = lad.inside & ~member(classes.take(lad.index), ids)
        js = stop.argmax(axis=1)
        rng = np.where(js == lad.first, lad.min_m, lad.ranges[js])   # foot below the view
        hit = lad.seen & stop[lad.rows, js] & (rng < lad.max_m)
        clear = lad.far & ~hit
        out[lad.sector[clear & lad.valid]] = lad.max_cm + 1       # repeats: the same value
        best = np.full(SECTORS, np.inf)
        np.minimum.at(best, lad.sector[hit & lad.valid], rng[hit & lad.valid])
        has = np.isfinite(best)
        out[has] = np.clip(np.round(best[has] * 100.0), lad.min_cm, lad.max_cm).astype(
            np.uint16)
        per_bearing = np.where(hit, rng, np.where(clear, np.inf, np.nan))
        return Obstacles(out, inc, offset, lad.min_cm, lad.max_cm, *args,
                         bearings=(lad.bearings_deg, per_bearing))


class _Ladder(object):
    """Everything about one geometry that does not depend on the frame (made once, reused
    while the camera size, attitude and height stay): the ladder's pixels as flat indices
    into the class map, where each bearing enters and leaves the view, the near and far
    limits, and each bearing's sector. ``reason`` says why nothing can be judged."""

    def __init__(self, view, W, max_range_m, inc, offset):
        self.reason = None
        if view is None:
            self.reason = "no ground in view"
            return
        betas, ranges, u, v, inside = view
        ok = np.where(inside, 1, 0)
        self.index = (v * ok).astype(np.intp) * W + (u * ok).astype(np.intp)
        self.inside, self.ranges = inside, ranges
        n = len(ranges)
        self.seen = inside.any(axis=1)
        self.first = inside.argmax(axis=1)
        last = n - 1 - inside[:, ::-1].argmax(axis=1)
        self.rows = np.arange(len(betas))
        after = v[self.rows, np.minimum(last + 1, n - 1)]
        top = self.seen & ((last == n - 1) | (after < 0))         # leaves the view at the top
        self.min_m = float(ranges[self.first[self.seen]].min())
        self.max_m = min(max_range_m, float(ranges[last[top]].min()) if top.any() else np.inf)
        if self.min_m >= self.max_m:
            self.reason = "no ground within {:.1f} m in view".format(self.max_m)
            return
        self.far = self.seen & ((last == n - 1) | (ranges[last] >= self.max_m))
        self.min_cm = int(math.ceil(self.min_m * 100))
        self.max_cm = max(self.min_cm, min(MAX_CM, int(self.max_m * 100)))
        self.bearings_deg = np.degrees(betas)
        self.sector = (np.mod(self.bearings_deg - offset + inc / 2.0, 360.0) // inc).astype(
            np.intp)
        self.valid = self.sector < SECTORS


def _view(R, K, W, H, height, max_range, inc):
    """Where the camera sees the ground: the bearings it sees, a range ladder (1 % steps up
    to the far limit) and each (bearing, range) ground point's pixel (u, v) and ``inside``
    the image. None when no ground is in view. ``R`` turns camera FRD into level FRD."""
    fx, fy, cx, cy = K
    border = np.concatenate([
        np.stack([np.linspace(0, W, 64), np.full(64, y)], axis=1) for y in (0.0, float(H))] + [
        np.stack([np.full(48, x), np.linspace(0, H, 48)], axis=1) for x in (0.0, float(W))])
    d = R.dot(np.stack([np.ones(len(border)), (border[:, 0] - cx) / fx,
                        (border[:, 1] - cy) / fy]))
    ground = d[2] > 1e-9
    nadir = R.T[:, 2]                                       # straight down, in camera FRD
    nadir_in = nadir[0] > 1e-9 and 0 <= cx + fx * nadir[1] / nadir[0] <= W and \
        0 <= cy + fy * nadir[2] / nadir[0] <= H
    if not ground.any() and not nadir_in:
        return None
    yaw = math.atan2(R[1, 0], R[0, 0])                      # the optical axis' bearing
    rel = np.mod(np.arctan2(d[1], d[0])[ground] - yaw + math.pi, 2 * math.pi) - math.pi
    lo, hi = (-math.pi, math.pi) if nadir_in or not len(rel) else (rel.min(), rel.max())
    step = min(math.radians(inc) / 3.0, 3.0 / fx)           # 3 a sector, 1 per 3 columns
    if nadir_in:                                            # looking down: all round, 1 deg
        step = max(step, math.radians(1.0))
    betas = yaw + np.linspace(lo, hi, min(int((hi - lo) / step) + 2, 3 * SECTORS + 2))
    reach = (height * np.hypot(d[0], d[1]) / np.where(ground, d[2], 1.0))[ground]
    near = 0.05 * height if nadir_in else 0.95 * float(reach.min())
    if ground.all():                                        # no horizon: the top edge ends it
        max_range = min(max_range, float(reach.max()))
    steps = int(math.log(1.02 * max_range / near) / math.log(1.01)) + 1
    ranges = near * 1.01 ** np.arange(max(2, steps))
    a = R.T[:, 0][:, None] * np.cos(betas) + R.T[:, 1][:, None] * np.sin(betas)
    c = R.T[:, 2] * height                                  # ground point = range * a + c
    x = ranges[None, :] * a[0][:, None] + c[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cx + fx * (ranges[None, :] * a[1][:, None] + c[1]) / x
        v = cy + fy * (ranges[None, :] * a[2][:, None] + c[2]) / x
    inside = (x > 1e-9) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    return betas, ranges, u, v, inside


def _as_list(spec):
    if spec is None:
        return []
    return [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
