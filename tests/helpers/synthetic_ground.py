"""Flat free ground with walls at known distances, seen through a pinhole camera.

The truth for jetseg.autopilot.obstacles, written independently of it: rotations are
Rodrigues turns about fixed axes (roll about x, then pitch about y, then yaw about z: the
aerospace Z-Y-X order), rays go through pixel centres, and a wall is an arc of constant
horizontal range between two bearings (0 forward, positive right), standing on the ground.

    classes = render(W, H, Camera(height=1.5, pitch=-10, hfov=62.2), walls=[Wall(-10, 5, 6.0)])
"""
import math

import numpy as np

SKY, ROAD, WALL = 0, 1, 2
NAMES = ["Sky", "Road", "Wall"]


class Camera(object):
    """height in m; mount pitch/roll/yaw and vehicle roll_v/pitch_v in degrees; FOVs or
    fx, fy, cx, cy in pixels."""

    def __init__(self, height, pitch=0.0, hfov=62.2, vfov=None, roll=0.0, yaw=0.0,
                 roll_v=0.0, pitch_v=0.0, fx=None, fy=None, cx=None, cy=None):
        self.height, self.pitch, self.roll, self.yaw = height, pitch, roll, yaw
        self.hfov, self.vfov, self.roll_v, self.pitch_v = hfov, vfov, roll_v, pitch_v
        self.fx, self.fy, self.cx, self.cy = fx, fy, cx, cy

    def focal(self, W, H):
        if self.fx is not None:
            return self.fx, self.fy, self.cx, self.cy
        fx = W / 2.0 / math.tan(math.radians(self.hfov) / 2)
        fy = fx if self.vfov is None else H / 2.0 / math.tan(math.radians(self.vfov) / 2)
        return fx, fy, W / 2.0, H / 2.0


class Wall(object):
    def __init__(self, left_deg, right_deg, range_m, top_m=float("inf")):
        self.left, self.right, self.range, self.top = left_deg, right_deg, range_m, top_m


def turn(v, axis, deg):
    """Rodrigues: rotate vectors v (..., 3) by deg about a fixed unit axis (right hand)."""
    k = np.asarray(axis, np.float64)
    a = math.radians(deg)
    return (v * math.cos(a) + np.cross(k, v) * math.sin(a)
            + np.outer(v.reshape(-1, 3).dot(k), k).reshape(v.shape) * (1 - math.cos(a)))


def level_rays(W, H, cam):
    """Level-frame (north = the vehicle's heading, east = right, down) ray per pixel centre."""
    fx, fy, cx, cy = cam.focal(W, H)
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d = np.stack([np.ones_like(u), (u - cx) / fx, (v - cy) / fy], axis=-1)   # FRD of camera
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    d = turn(turn(turn(d, X, cam.roll), Y, cam.pitch), Z, cam.yaw)            # the mount
    return turn(turn(d, X, cam.roll_v), Y, cam.pitch_v)                        # the vehicle


def render(W, H, cam, walls=()):
    """HxW uint8 class map: Sky, Road (the ground) and Wall."""
    d = level_rays(W, H, cam)
    horiz = np.hypot(d[..., 0], d[..., 1])
    bearing = np.degrees(np.arctan2(d[..., 1], d[..., 0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ground_r = np.where(d[..., 2] > 0, cam.height * horiz / d[..., 2], np.inf)
    out = np.where(np.isfinite(ground_r), ROAD, SKY).astype(np.uint8)
    best = ground_r.copy()
    for w in walls:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = w.range * d[..., 2] / horiz                 # depth below the camera there
        up = cam.height - z                                  # height above the ground
        hits = ((bearing >= w.left) & (bearing <= w.right) & (w.range < best)
                & (up >= 0) & (up <= w.top))
        out[hits] = WALL
        best = np.where(hits, w.range, best)
    return out


def metres_per_row(range_m, height_m, fy):
    """Ground spanned by one image row at ``range_m`` (the quantisation of a class map)."""
    return (height_m ** 2 + range_m ** 2) / (height_m * fy)


# ---- the same scenes as video frames, and a model that reads them back exactly ----------
BGR = np.array([(255, 0, 0), (0, 0, 255), (0, 255, 0)], np.uint8)   # blue sky, red road, green wall


def to_bgr(classes):
    """A frame whose colours the colour net turns back into ``classes``."""
    return BGR[classes]


def colour_net(path, width, height):
    """An ONNX 'segmentation' model that calls blue Sky, red Road and green Wall."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from jetseg_export.compose import compose
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[SKY, 2], w[ROAD, 0], w[WALL, 1] = 1.0, 1.0, 1.0      # net input is RGB
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["logits"])], "colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, height, width])],
        [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(compose(m, NAMES, [(70, 130, 180), (128, 64, 128), (64, 0, 128)],
                      mean=(0, 0, 0), std=(1, 1, 1)), str(path))
    return str(path)
