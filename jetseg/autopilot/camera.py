"""The camera on the vehicle: the flat-ground pinhole model's lens and mount.

    cam = CameraGeometry(height_m=1.5, pitch_deg=-10, hfov_deg=62.2)   # or a calibration:
    cam = CameraGeometry.from_calibration("cam.json", height_m=1.5)
    fx, fy, cx, cy = cam.intrinsics(480, 360)       # pixels of a map of that size

Angles are degrees with aerospace signs: pitch positive nose-up (a camera tilted down has a
negative pitch), roll positive right side down, yaw positive to the right. Obstacle
distances from it: jetseg.autopilot.obstacles.
"""
import json
import math
import os

import numpy as np

from jetseg.errors import JetsegError


def finite(value, what, lo=None, hi=None, fix=""):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise JetsegError("{} {!r} is not a number".format(what, value), fix=fix)
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise JetsegError("{} {} is outside {}..{}".format(what, value, lo, hi), fix=fix)
    return v


def rotation(roll_deg, pitch_deg, yaw_deg=0.0):
    """3x3 matrix turning FRD vectors of a rotated frame into the reference frame (Z-Y-X)."""
    r, p, y = (math.radians(a) for a in (roll_deg, pitch_deg, yaw_deg))
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), \
        math.cos(y), math.sin(y)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz.dot(ry).dot(rx)


def load_calibration(path):
    """fx, fy, cx, cy (pixels) and the calibrated image size from a calibration file.

    JSON:  {"fx": 620.1, "fy": 619.8, "cx": 640.2, "cy": 359.7, "width": 1280, "height": 720}
           or {"camera_matrix": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "image_width": ...,
           "image_height": ...}
    YAML/XML written by OpenCV's calibration (cv2.FileStorage): camera_matrix, image_width,
    image_height. Lens distortion is not modelled: calibrate (or rectify) a lens with little.
    """
    fix = ("write JSON {\"fx\", \"fy\", \"cx\", \"cy\", \"width\", \"height\"} (pixels) or "
           "OpenCV's calibration YAML with camera_matrix, image_width, image_height")
    if not os.path.isfile(str(path)):
        raise JetsegError("calibration file not found", path=path, fix=fix)
    try:
        if str(path).lower().endswith(".json"):
            with open(str(path)) as f:
                d = json.load(f)
            if "camera_matrix" in d:
                k = d["camera_matrix"]
                k = np.asarray(k.get("data", k) if isinstance(k, dict) else k, np.float64)
                k = k.reshape(3, 3)
                d = {"fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
                     "width": d.get("image_width", d.get("width")),
                     "height": d.get("image_height", d.get("height"))}
        else:
            from jetseg.errors import need_cv2
            cv2 = need_cv2("reading an OpenCV calibration file")
            fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
            k = fs.getNode("camera_matrix").mat()
            d = {"fx": k[0, 0], "fy": k[1, 1], "cx": k[0, 2], "cy": k[1, 2],
                 "width": fs.getNode("image_width").real(),
                 "height": fs.getNode("image_height").real()}
            fs.release()
        out = dict((key, float(d[key])) for key in ("fx", "fy", "cx", "cy", "width", "height"))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise JetsegError("not a camera calibration ({})".format(
            str(e).splitlines()[0] if str(e) else type(e).__name__), path=path, fix=fix)
    except Exception as e:                    # cv2.error: a broken YAML/XML file
        raise JetsegError("cannot read the calibration ({})".format(
            str(e).strip().splitlines()[-1]), path=path, fix=fix)
    for key in ("fx", "fy", "width", "height"):
        if not out[key] > 0:
            raise JetsegError("calibration {} = {} must be positive".format(key, out[key]),
                              path=path, fix=fix)
    return out


class CameraGeometry(object):
    """How the camera sits on the vehicle and sees: the flat-ground pinhole model.

    height_m    camera height above the ground in metres (> 0; None: only from a live source)
    pitch_deg   mount pitch, -90..90, positive nose-up: a camera tilted down is negative
    roll_deg    mount roll, -180..180, positive right side down
    yaw_deg     mount yaw, -180..180, 0 looking forward, positive to the right
    hfov_deg    horizontal field of view, 1..179 degrees
    vfov_deg    vertical field of view, 1..179 (default: square pixels, fy = fx)
    calibration fx, fy, cx, cy, width, height (``load_calibration``); wins over the FOVs.
                Class maps of another size scale it (the model sees the whole frame resized)
    """

    def __init__(self, height_m=None, pitch_deg=0.0, hfov_deg=None, vfov_deg=None,
                 roll_deg=0.0, yaw_deg=0.0, calibration=None):
        fov_fix = "give the lens's field of view in degrees, e.g. --hfov 62.2 --vfov 48.8"
        self.height_m = None if height_m is None else finite(
            height_m, "camera height", 1e-3, 1e4,
            fix="give the camera's height above the ground in metres, e.g. --camera-height 1.5")
        self.pitch_deg = finite(pitch_deg, "camera pitch", -90, 90,
                                fix="degrees, positive nose-up: a camera tilted down by 20 "
                                    "degrees is --camera-pitch -20")
        self.roll_deg = finite(roll_deg, "camera roll", -180, 180, fix="degrees, -180..180")
        self.yaw_deg = finite(yaw_deg, "camera yaw", -180, 180, fix="degrees, -180..180")
        self.calibration = dict(calibration) if calibration else None
        if self.calibration is None and hfov_deg is None:
            raise JetsegError("the camera needs a field of view or a calibration",
                              fix=fov_fix + " or --calibration FILE")
        self.hfov_deg = None if hfov_deg is None else finite(
            hfov_deg, "horizontal field of view", 1, 179, fix=fov_fix)
        self.vfov_deg = None if vfov_deg is None else finite(
            vfov_deg, "vertical field of view", 1, 179, fix=fov_fix)
        self.mount = rotation(self.roll_deg, self.pitch_deg, self.yaw_deg)

    @classmethod
    def from_calibration(cls, path, **kw):
        return cls(calibration=load_calibration(path), **kw)

    def intrinsics(self, width, height):
        """(fx, fy, cx, cy) in pixels of a ``width`` x ``height`` class map."""
        c = self.calibration
        if c:
            sx, sy = width / c["width"], height / c["height"]
            return c["fx"] * sx, c["fy"] * sy, c["cx"] * sx, c["cy"] * sy
        fx = (width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)
        fy = fx if self.vfov_deg is None else \
            (height / 2.0) / math.tan(math.radians(self.vfov_deg) / 2.0)
        return fx, fy, width / 2.0, height / 2.0

    def attitude_from_horizon(self, horizon):
        """Vehicle (roll, pitch) in degrees that put the sky/ground line where ``horizon``
        (a jetseg Horizon, sky on the side normal . p > rho) sees it; None without a line."""
        if horizon is None or horizon.normal is None:
            return None
        fx, fy, cx, cy = self.intrinsics(horizon.width, horizon.height)
        nx, ny = horizon.normal
        down_cam = -np.array([nx * cx + ny * cy - horizon.rho, nx * fx, ny * fy])
        down = self.mount.dot(down_cam / np.linalg.norm(down_cam))   # body FRD
        return (math.degrees(math.atan2(down[1], down[2])),
                math.degrees(-math.asin(max(-1.0, min(1.0, down[0])))))

    def __repr__(self):
        lens = "calibration fx={fx:.1f} fy={fy:.1f}".format(**self.calibration) \
            if self.calibration else "hfov={} vfov={}".format(self.hfov_deg, self.vfov_deg)
        return "CameraGeometry(height_m={}, pitch_deg={}, roll_deg={}, yaw_deg={}, {})".format(
            self.height_m, self.pitch_deg, self.roll_deg, self.yaw_deg, lens)
