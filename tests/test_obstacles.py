"""Obstacle distances from class maps: rendered flat ground with walls at known distances.

The scenes come from tests/helpers/synthetic_ground.py, an independent pinhole renderer
(Rodrigues rotations, rays through pixel centres); distances must come back within 10 % or
the ground one image row spans there, whichever is larger.
"""
import json
import math

import numpy as np
import pytest

from jetseg import JetsegError
from jetseg import autopilot as ap
from jetseg.autopilot.obstacles import (UNKNOWN_CM, CameraGeometry, ObstacleDistances,
                                        load_calibration)
from tests.helpers.synthetic_ground import (NAMES, ROAD, SKY, WALL, Camera, Wall,
                                            metres_per_row, render)

W, H = 480, 360
HFOV, VFOV = 62.2, 48.8
WALLS = [Wall(-25.0, -5.0, 6.0), Wall(5.0, 25.0, 11.0)]


def measure(cam, classes, increment=5.0, live=True, **kw):
    geo = CameraGeometry(height_m=cam.height, pitch_deg=cam.pitch, roll_deg=cam.roll,
                         yaw_deg=cam.yaw, hfov_deg=cam.hfov, vfov_deg=cam.vfov, **kw)
    od = ObstacleDistances(geo, ["Road"], names=NAMES, increment_deg=increment)
    if not live:
        return od.measure(classes)
    return od.measure(classes, roll_deg=cam.roll_v, pitch_deg=cam.pitch_v,
                      attitude_source="test")


def check(cam, obs, walls, margin=2.0):
    """Sectors well inside a wall: its range; well clear of walls in view: max + 1;
    outside the view: UINT16_MAX. Returns how many sectors of each kind were checked."""
    fy = cam.focal(W, H)[1]
    half = cam.hfov / 2.0
    seen = {"wall": 0, "clear": 0, "unknown": 0}
    for i, d in enumerate(obs.distances_cm):
        lo = obs.bearing_deg(i) - obs.increment_deg / 2
        hi = lo + obs.increment_deg
        if hi < -half - 4 * margin or lo > half + 4 * margin:
            assert d == UNKNOWN_CM, (i, d)
            seen["unknown"] += 1
            continue
        if lo < -half + margin or hi > half - margin:
            continue                                          # the edge of the view
        inside = [w for w in walls if w.left + margin <= lo and hi <= w.right - margin]
        touches = [w for w in walls if w.left - margin < hi and lo < w.right + margin]
        if inside:
            r = inside[0].range
            tol = max(0.1 * r, metres_per_row(r, cam.height, fy))
            if r < obs.min_distance_cm / 100.0:
                assert d == obs.min_distance_cm, (i, d)       # its foot is below the view
            else:
                assert abs(d / 100.0 - r) <= tol, (i, obs.bearing_deg(i), d, r, tol)
            seen["wall"] += 1
        elif not touches:
            assert d == obs.max_distance_cm + 1, (i, obs.bearing_deg(i), d)
            seen["clear"] += 1
    return seen


@pytest.mark.parametrize("height", [0.6, 1.5, 4.0])
@pytest.mark.parametrize("pitch,roll_v,pitch_v", [
    (0.0, 0.0, 0.0), (-10.0, 0.0, 0.0), (-25.0, 0.0, 0.0),     # mount pitch
    (-10.0, 12.0, 0.0), (-10.0, -15.0, 4.0), (-5.0, 8.0, -6.0),  # vehicle roll and pitch
])
def test_walls_come_back_at_their_distances(height, pitch, roll_v, pitch_v):
    cam = Camera(height, pitch=pitch, hfov=HFOV, vfov=VFOV, roll_v=roll_v, pitch_v=pitch_v)
    obs = measure(cam, render(W, H, cam, WALLS))
    assert obs.reason == "ok" and len(obs.distances_cm) == 72
    assert obs.distances_cm.dtype == np.uint16
    assert obs.increment_deg == 5.0 and obs.angle_offset_deg == -180.0
    assert obs.max_distance_cm == 2000                    # the horizon is in view: the cap
    # nearest ground: the bottom edge of the image, where the renderer's ground starts
    near = min(r for r in _bottom_ranges(cam) if np.isfinite(r))
    assert abs(obs.min_distance_cm / 100.0 - near) < 0.02 * near + 0.01
    seen = check(cam, obs, WALLS)
    assert seen["wall"] >= 5 and seen["clear"] >= 1 and seen["unknown"] >= 55, seen
    nearest = max(6.0, obs.min_distance_cm / 100.0)           # a foot below the view: min
    assert abs(obs.nearest_m - nearest) <= max(0.6, metres_per_row(6.0, height, 396.0))
    assert -25 <= obs.nearest_bearing_deg <= -5


def _bottom_ranges(cam):
    """Ground range of the bottom edge of every column, from the renderer's own rays."""
    from tests.helpers.synthetic_ground import level_rays
    d = level_rays(W, 2 * H, cam)[-1]          # 2H rows: the last centre is the bottom edge
    return np.where(d[:, 2] > 0, cam.height * np.hypot(d[:, 0], d[:, 1]) / d[:, 2], np.inf)


def test_attitude_matters_and_is_compensated():
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV, roll_v=10.0, pitch_v=4.0)
    classes = render(W, H, cam, WALLS)
    assert check(cam, measure(cam, classes), WALLS)["wall"] >= 4
    level = measure(cam, classes, live=False)     # the same frame, vehicle assumed level
    assert level.attitude_source == "configured (level)"
    i = int(np.argmin(np.abs([level.bearing_deg(k) + 15 for k in range(72)])))
    assert abs(level.distances_cm[i] / 100.0 - 6.0) > 1.5     # 4 degrees nose-up: way off


def test_a_smaller_map_of_another_shape_is_read_with_the_frames_lens():
    """The net's 320x320 class map of a 480x360 frame (square pixels, no --vfov): told the
    frame's size it gives the frame's distances, as its enlargement to the frame does;
    taken as a map with square pixels of its own it does not."""
    from jetseg.core.processing import resize_nearest
    vfov = 2 * math.degrees(math.atan(math.tan(math.radians(HFOV / 2)) * H / W))
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=vfov)
    low = render(320, 320, cam, WALLS)             # the frame's view squeezed into the map
    od = ObstacleDistances(CameraGeometry(height_m=1.5, pitch_deg=-10, hfov_deg=HFOV),
                           ["Road"], names=NAMES)
    framed = od.measure(low, frame_size=(W, H))
    assert check(cam, framed, WALLS)["wall"] >= 5
    enlarged = od.measure(resize_nearest(low, W, H))
    hit = framed.distances_cm <= framed.max_distance_cm
    assert np.array_equal(hit, enlarged.distances_cm <= enlarged.max_distance_cm)
    assert hit.sum() >= 5 and np.allclose(framed.distances_cm[hit], enlarged.distances_cm[hit],
                                          rtol=0.05)
    own = od.measure(low)
    assert not np.allclose(own.distances_cm[hit], framed.distances_cm[hit], rtol=0.1)


def test_fov_layout_spreads_72_sectors_over_the_view():
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    obs = measure(cam, render(W, H, cam, WALLS), increment="fov")
    assert obs.increment_deg == pytest.approx(HFOV / 72)
    assert obs.angle_offset_deg == pytest.approx(-HFOV / 2 + HFOV / 144)
    assert (obs.distances_cm != UNKNOWN_CM).all()              # every sector is in view
    seen = check(cam, obs, WALLS, margin=1.0)
    assert seen["wall"] >= 30 and seen["clear"] >= 10, seen


def test_wall_at_the_feet_reports_min_distance_and_far_wall_is_clear():
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    walls = [Wall(-20, -5, 1.0), Wall(5, 20, 35.0)]            # under the view; past 20 m
    obs = measure(cam, render(W, H, cam, walls))
    near = [obs.distances_cm[i] for i in range(72) if -18 < obs.bearing_deg(i) < -7]
    far = [obs.distances_cm[i] for i in range(72) if 7 < obs.bearing_deg(i) < 18]
    assert near and all(d == obs.min_distance_cm for d in near)
    assert far and all(d == obs.max_distance_cm + 1 for d in far)


def test_rows_above_the_horizon_are_never_free_nor_obstacles():
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    road_everywhere = np.full((H, W), ROAD, np.uint8)           # "road" in the sky too
    obs = measure(cam, road_everywhere)
    in_view = [d for i, d in enumerate(obs.distances_cm) if abs(obs.bearing_deg(i)) < 25]
    assert in_view and all(d == obs.max_distance_cm + 1 for d in in_view)
    classes = render(W, H, cam, WALLS)
    sky_rows = np.where((classes == SKY).all(axis=1))[0]
    classes[sky_rows[: len(sky_rows) // 2]] = WALL              # a "wall" up in the sky
    assert (measure(cam, classes).distances_cm == measure(cam, render(
        W, H, cam, WALLS)).distances_cm).all()


def test_no_ground_in_view_is_unknown_everywhere():
    cam = Camera(1.5, pitch=60, hfov=HFOV, vfov=VFOV)          # looking up
    obs = measure(cam, render(W, H, cam, WALLS))
    assert (obs.distances_cm == UNKNOWN_CM).all() and obs.reason == "no ground in view"
    assert obs.nearest_m is None


def test_steep_camera_far_limit_is_the_top_edge():
    cam = Camera(2.0, pitch=-45, hfov=HFOV, vfov=VFOV)
    obs = measure(cam, render(W, H, cam, [Wall(-20, -5, 3.0)]))
    depression = math.radians(45 - VFOV / 2)                   # top edge, centre column
    top = 2.0 / math.tan(depression)
    assert obs.max_distance_cm / 100.0 == pytest.approx(top, rel=0.02)
    assert any(abs(obs.distances_cm[i] / 100.0 - 3.0) < 0.3 for i in range(72))


def test_calibration_files_json_and_opencv_yaml(tmp_path):
    cv2 = pytest.importorskip("cv2")
    fx, fy, cx, cy = 400.0, 410.0, 250.0, 170.0               # off-centre principal point
    cam = Camera(1.5, pitch=-10, fx=fx, fy=fy, cx=cx, cy=cy, hfov=HFOV)
    classes = render(W, H, cam, WALLS)
    j = tmp_path / "cam.json"                                   # calibrated at twice the size
    j.write_text(json.dumps({"fx": 2 * fx, "fy": 2 * fy, "cx": 2 * cx, "cy": 2 * cy,
                             "width": 2 * W, "height": 2 * H}))
    y = tmp_path / "cam.yaml"
    fs = cv2.FileStorage(str(y), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 2 * W)
    fs.write("image_height", 2 * H)
    fs.write("camera_matrix", np.array([[2 * fx, 0, 2 * cx], [0, 2 * fy, 2 * cy], [0, 0, 1]]))
    fs.release()
    for path in (j, y):
        assert load_calibration(path)["cx"] == 2 * cx
        geo = CameraGeometry.from_calibration(path, height_m=1.5, pitch_deg=-10)
        obs = ObstacleDistances(geo, ["Road"], names=NAMES).measure(classes)
        assert check(cam, obs, WALLS)["wall"] >= 4
    bad = tmp_path / "bad.json"
    bad.write_text('{"fx": 1}')
    with pytest.raises(JetsegError, match="not a camera calibration"):
        load_calibration(bad)
    with pytest.raises(JetsegError, match="not found"):
        load_calibration(tmp_path / "missing.json")


@pytest.mark.parametrize("kw,what", [
    (dict(height_m=0.0), "camera height"), (dict(height_m=-1.0), "camera height"),
    (dict(pitch_deg=95), "camera pitch"), (dict(pitch_deg=-91), "camera pitch"),
    (dict(hfov_deg=0.5), "field of view"), (dict(hfov_deg=180), "field of view"),
    (dict(vfov_deg=179.5), "field of view"), (dict(hfov_deg=None), "field of view"),
    (dict(height_m="high"), "not a number"),
])
def test_geometry_that_makes_no_sense_is_refused_with_the_fix(kw, what):
    args = dict(height_m=1.5, pitch_deg=-10, hfov_deg=62.2)
    args.update(kw)
    with pytest.raises(JetsegError) as e:
        CameraGeometry(**args)
    assert what in str(e.value) and "fix:" in str(e.value)


def test_bad_obstacle_options_are_refused():
    geo = CameraGeometry(height_m=1.5, hfov_deg=62.2)
    for kw in (dict(increment_deg=1.0), dict(increment_deg="wide"), dict(max_range_m=0)):
        with pytest.raises(JetsegError):
            ObstacleDistances(geo, ["Road"], names=NAMES, **kw)
    with pytest.raises(JetsegError, match="not a class"):
        ObstacleDistances(geo, ["Grass"], names=NAMES)
    with pytest.raises(JetsegError, match="free classes"):
        ObstacleDistances(geo, [], names=NAMES)


@pytest.mark.parametrize("roll_v,pitch_v,mount", [(0, 0, -10), (12, 0, -10), (-15, 5, -5),
                                                  (20, -8, 0), (5, 3, -20)])
def test_vehicle_attitude_from_the_horizon(roll_v, pitch_v, mount):
    cam = Camera(1.5, pitch=mount, hfov=HFOV, vfov=VFOV, roll_v=roll_v, pitch_v=pitch_v)
    h = ap.estimate_horizon(render(W, H, cam), [SKY])
    geo = CameraGeometry(height_m=1.5, pitch_deg=mount, hfov_deg=HFOV, vfov_deg=VFOV)
    roll, pitch = geo.attitude_from_horizon(h)
    assert abs(roll - roll_v) < 0.5 and abs(pitch - pitch_v) < 0.5, (roll, pitch)


def test_segmentation_names_come_with_the_result():
    class Res(object):                                          # what unpack() reads
        def __init__(self, classes):
            self.classes = classes
            self.segmenter = type("S", (), {"classes": NAMES})()
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    od = ObstacleDistances(CameraGeometry(height_m=1.5, pitch_deg=-10, hfov_deg=HFOV,
                                          vfov_deg=VFOV), ["road"])
    obs = od.measure(Res(render(W, H, cam, WALLS)))
    assert check(cam, obs, WALLS)["wall"] >= 4
    assert WALL == 2 and obs.height_source == "configured"


def test_json_emit_carries_the_distances(tmp_path):
    pytest.importorskip("onnx")
    import subprocess
    import sys
    from tests.helpers.common import ROOT, write_video
    from tests.helpers.synthetic_ground import colour_net, to_bgr
    w, h = 320, 240
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    low = [Wall(x.left, x.right, x.range, top_m=1.0) for x in WALLS]   # the horizon shows
    frame = to_bgr(render(w, h, cam, low))
    clip = write_video(tmp_path / "walls.avi", 6, (w, h), fps=10.0, frame_fn=lambda i: frame)
    out = tmp_path / "run.jsonl"
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine",
                        colour_net(tmp_path / "m.onnx", w, h), clip, "--headless",
                        "--free-classes", "Road", "--hfov", str(HFOV), "--vfov", str(VFOV),
                        "--camera-height", "1.5", "--camera-pitch", "-10",
                        "--emit", "jsonl:" + str(out)], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["frame_id"] for x in recs] == list(range(6))
    o = recs[-1]["obstacles"]
    assert o["height_source"] == "configured" and o["attitude_source"] == "configured (level)"
    assert len(o["distances_cm"]) == 72 and o["max_distance_cm"] == 2000
    assert abs(o["nearest_m"] - 6.0) < 0.6 and -25 <= o["nearest_bearing_deg"] <= -5
    hz = recs[-1]["horizon"]
    assert abs(hz["vehicle_roll_deg"]) < 0.5 and abs(hz["vehicle_pitch_deg"]) < 0.5
