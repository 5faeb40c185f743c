"""MAVLink out of jetseg, checked with a real pymavlink on the other end (no mocks).

A pymavlink receiver on 127.0.0.1 decodes every message type jetseg sends and checks the
fields against the common message set; the test's own pymavlink sender plays the flight
controller (ATTITUDE, DISTANCE_SENSOR, GLOBAL_POSITION_INT) for the live geometry; TCP and a
pseudo-terminal serial port go away mid-run and come back.
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pymavlink", reason="pip install 'jetseg[mavlink]' to test MAVLink")
os.environ.setdefault("MAVLINK20", "1")            # before mavutil: MAVLink 2 receivers
from pymavlink import mavutil  # noqa: E402
from pymavlink.dialects.v20 import ardupilotmega as mav  # noqa: E402

from jetseg import JetsegError  # noqa: E402
from jetseg.autopilot.emit import EmitSink, Signals  # noqa: E402
from jetseg.autopilot.mavlink import MavlinkEmitter, MavlinkLink  # noqa: E402
from jetseg.autopilot.obstacles import (UNKNOWN_CM, CameraGeometry,  # noqa: E402
                                        ObstacleDistances)
from tests.helpers.common import ROOT, free_port, write_video  # noqa: E402
from tests.helpers.synthetic_ground import (NAMES, Camera, Wall, colour_net,  # noqa: E402
                                            metres_per_row, render, to_bgr)

W, H = 320, 240
HFOV, VFOV = 62.2, 48.8
WALLS = [Wall(-25.0, -5.0, 6.0), Wall(5.0, 25.0, 11.0)]


def receiver(port):
    return mavutil.mavlink_connection("udpin:127.0.0.1:{}".format(port), source_system=1,
                                      source_component=mav.MAV_COMP_ID_AUTOPILOT1)


def collect(conn, types, timeout=6.0, count=1, where=None):
    """{type: [messages]} until every type has ``count`` messages (or the timeout)."""
    got = dict((t, []) for t in types)
    end = time.time() + timeout
    while time.time() < end and any(len(v) < count for v in got.values()):
        m = conn.recv_match(type=list(types), blocking=True, timeout=0.2)
        if m is not None and (where is None or where(m)):
            got[m.get_type()].append(m)
    return got


def geometry(height=1.5, pitch=-10.0):
    return CameraGeometry(height_m=height, pitch_deg=pitch, hfov_deg=HFOV, vfov_deg=VFOV)


def wall_sectors(distances, increment=5.0, offset=-180.0):
    """{wall range: [reported metres]} for sectors well inside WALLS."""
    out = {}
    for i, d in enumerate(distances):
        lo = offset + i * increment - increment / 2
        for w in WALLS:
            if w.left + 2 <= lo and lo + increment <= w.right - 2:
                out.setdefault(w.range, []).append(d / 100.0)
    return out


def assert_walls(distances, height, fy=VFOV and (H / 2) / np.tan(np.radians(VFOV / 2))):
    seen = wall_sectors(distances)
    assert sorted(seen) == [6.0, 11.0], seen
    for r, got in seen.items():
        tol = max(0.1 * r, metres_per_row(r, height, fy))
        assert all(abs(g - r) <= tol for g in got), (r, got)


def test_every_message_type_decodes_with_the_spec_fields():
    port = free_port()
    rx = receiver(port)
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    obs = ObstacleDistances(geometry(), ["Road"], names=NAMES).measure(render(W, H, cam, WALLS))
    captured = time.time() - 0.05
    with MavlinkLink("udpout:127.0.0.1:{}".format(port), sysid=7) as link:
        link.send_obstacles(obs, captured)
        link.send_named({"hz_roll": -3.25, "f_Road": 0.5})
        link.send_text("jetseg: hello autopilot")
        got = collect(rx, ["HEARTBEAT", "OBSTACLE_DISTANCE", "NAMED_VALUE_FLOAT", "STATUSTEXT"],
                      count=1)
        active = collect(rx, ["HEARTBEAT"], timeout=4.0,
                         where=lambda m: m.system_status == mav.MAV_STATE_ACTIVE)["HEARTBEAT"]
    hb, od = got["HEARTBEAT"][0], got["OBSTACLE_DISTANCE"][0]
    for m in [hb, od] + got["NAMED_VALUE_FLOAT"] + got["STATUSTEXT"]:
        assert (m.get_srcSystem(), m.get_srcComponent()) == (7, 196)
        assert m.get_msgbuf()[0] == 0xFD                              # MAVLink 2 framing
    assert (hb.type, hb.autopilot, hb.mavlink_version) == (
        mav.MAV_TYPE_ONBOARD_CONTROLLER, mav.MAV_AUTOPILOT_INVALID, 3)
    assert hb.system_status in (mav.MAV_STATE_STANDBY, mav.MAV_STATE_ACTIVE) and active
    assert od.get_msgId() == 330 and len(od.distances) == 72
    assert list(od.distances) == [int(d) for d in obs.distances_cm]
    assert od.sensor_type == mav.MAV_DISTANCE_SENSOR_UNKNOWN
    assert od.frame == mav.MAV_FRAME_BODY_FRD == 12
    assert (od.increment, od.increment_f, od.angle_offset) == (5, 5.0, -180.0)
    assert od.time_usec == int(captured * 1e6)
    assert od.min_distance == obs.min_distance_cm and od.max_distance == 2000
    assert od.distances.count(UNKNOWN_CM) >= 55                       # out of view
    assert od.distances.count(od.max_distance + 1) >= 1                # clear in view
    assert_walls(od.distances, 1.5)
    nvf = dict((m.name, m.value) for m in got["NAMED_VALUE_FLOAT"])
    assert nvf.get("hz_roll", -3.25) == pytest.approx(-3.25)
    assert got["STATUSTEXT"][0].text == "jetseg: hello autopilot"
    assert got["STATUSTEXT"][0].severity == mav.MAV_SEVERITY_INFO


def test_fov_layout_message():
    port = free_port()
    rx = receiver(port)
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    od_ = ObstacleDistances(geometry(), ["Road"], names=NAMES, increment_deg="fov")
    obs = od_.measure(render(W, H, cam, WALLS))
    with MavlinkLink("udpout:127.0.0.1:{}".format(port)) as link:
        link.send_obstacles(obs)
        od = collect(rx, ["OBSTACLE_DISTANCE"])["OBSTACLE_DISTANCE"][0]
    assert od.increment_f == pytest.approx(HFOV / 72, abs=1e-5) and od.increment == 1
    assert od.angle_offset == pytest.approx(-HFOV / 2 + HFOV / 144, abs=1e-4)
    assert UNKNOWN_CM not in od.distances                                # all in view


class Autopilot(object):
    """The test's flight controller: a pymavlink endpoint that talks to a jetseg link."""

    def __init__(self, port, sysid=1):
        self.conn = mavutil.mavlink_connection("udpout:127.0.0.1:{}".format(port),
                                               source_system=sysid, source_component=1)

    def state(self, roll=0.0, pitch=0.0, rangefinder_cm=None, relative_alt_m=None):
        self.conn.mav.heartbeat_send(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                     0, 0, mav.MAV_STATE_ACTIVE)
        self.conn.mav.attitude_send(1000, np.radians(roll), np.radians(pitch), 0, 0, 0, 0)
        if rangefinder_cm is not None:
            self.conn.mav.distance_sensor_send(1000, 20, 4000, rangefinder_cm, 0, 0,
                                               mav.MAV_SENSOR_ROTATION_PITCH_270, 0)
        if relative_alt_m is not None:
            self.conn.mav.global_position_int_send(1000, 0, 0, 0, int(relative_alt_m * 1000),
                                                   0, 0, 0, 0)


def wait_live(link, key, value=None, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        live = link.vehicle.live()
        if key in live and (value is None or live[key] == value):
            return live
        time.sleep(0.02)
    return link.vehicle.live()


def test_attitude_and_height_from_the_vehicle_are_used_live():
    port = free_port()
    od = ObstacleDistances(geometry(height=1.0), ["Road"], names=NAMES)
    with MavlinkLink("udpin:127.0.0.1:{}".format(port)) as link:
        assert link.vehicle.max_age_s == 1.0
        fc = Autopilot(port)
        roll, pitch, height = 10.0, 4.0, 2.0
        tilt = np.cos(np.radians(roll)) * np.cos(np.radians(pitch))
        fc.state(roll, pitch, rangefinder_cm=int(round(height / tilt * 100)))
        live = wait_live(link, "height_source", "DISTANCE_SENSOR")
        assert live["attitude_source"] == "ATTITUDE" and live["height_source"] == "DISTANCE_SENSOR"
        assert live["roll_deg"] == pytest.approx(roll, abs=1e-3)
        assert live["height_m"] == pytest.approx(height, abs=0.01)     # tilt taken out
        cam = Camera(height, pitch=-10, hfov=HFOV, vfov=VFOV, roll_v=roll, pitch_v=pitch)
        classes = render(W, H, cam, WALLS)
        obs = od.measure(classes, **live)
        assert obs.height_source == "DISTANCE_SENSOR" and obs.attitude_source == "ATTITUDE"
        assert_walls(obs.distances_cm, height)
        level = od.measure(classes)                  # no live data: 1 m and level, wrong
        assert level.height_source == "configured"
        assert wall_sectors(level.distances_cm)[6.0][0] < 4.0

        fc.state(0.0, 0.0, relative_alt_m=2.5)       # no rangefinder: relative altitude
        time.sleep(1.1)                              # the rangefinder reading goes stale
        fc.state(0.0, 0.0, relative_alt_m=2.5)
        live = wait_live(link, "height_source", "GLOBAL_POSITION_INT.relative_alt")
        assert live["height_m"] == pytest.approx(2.5)
        other = Autopilot(port, sysid=42)            # another vehicle on the link: ignored
        other.state(30.0, 0.0, relative_alt_m=50.0)
        time.sleep(0.2)
        assert link.vehicle.live()["height_m"] == pytest.approx(2.5)
        time.sleep(1.0)                              # everything stale: configured again
        assert link.vehicle.live() == {}
        assert link.vehicle.heartbeat is not None


def test_tcp_link_lost_mid_run_never_blocks_and_comes_back():
    port = free_port()
    server = mavutil.mavlink_connection("tcpin:127.0.0.1:{}".format(port))
    link = MavlinkLink("tcp:127.0.0.1:{}".format(port))
    try:
        assert collect(server, ["HEARTBEAT"])["HEARTBEAT"]
        server.close()                                   # the autopilot goes away
        done = threading.Event()

        def camera_loop():                               # a camera loop sending meanwhile
            for i in range(300):
                link.send_text("frame {}".format(i))
                time.sleep(0.005)
            done.set()
        t = threading.Thread(target=camera_loop)
        t.start()
        t.join(timeout=30)
        assert done.is_set(), "send() blocked while the link was down"
        deadline = time.time() + 10
        while link.io is not None and time.time() < deadline:
            time.sleep(0.05)                             # noticed on the next send or read
        assert link.io is None
        before = link.reconnects
        server = mavutil.mavlink_connection("tcpin:127.0.0.1:{}".format(port))   # back
        got, deadline = [], time.time() + 30
        while not got and time.time() < deadline:        # retried with backoff (<= 8 s)
            link.send_text("after the outage")
            got = collect(server, ["STATUSTEXT"], timeout=1.0,
                          where=lambda m: m.text == "after the outage")["STATUSTEXT"]
        assert got and link.reconnects > before
        assert link.dropped > 0
    finally:
        link.close()
        server.close()


def test_serial_link_over_a_pseudo_terminal():
    pytest.importorskip("serial", reason="pyserial is part of jetseg[mavlink]")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    parser = mav.MAVLink(None)
    link = MavlinkLink("{},921600".format(path))
    try:
        link.send_text("over serial")
        msgs, end = [], time.time() + 5
        while time.time() < end and not any(m.get_type() == "STATUSTEXT" for m in msgs):
            data = os.read(master, 4096)
            msgs += parser.parse_buffer(data) or []
        assert any(m.get_type() == "STATUSTEXT" and m.text == "over serial" for m in msgs)
        os.write(master, mav.MAVLink_attitude_message(0, 0.2, 0.0, 0, 0, 0, 0).pack(
            mav.MAVLink(None, srcSystem=1, srcComponent=1)))
        roll = wait_live(link, "roll_deg")["roll_deg"]
        assert roll == pytest.approx(np.degrees(0.2), abs=1e-3)
        os.close(master)                                 # the cable is pulled
        master = None
        end = time.time() + 10
        while link.io is not None and time.time() < end:
            time.sleep(0.05)
        assert link.io is None                           # noticed; reopened with backoff
        for _ in range(100):
            link.send_text("into the void")              # returns at once, counted dropped
        time.sleep(0.5)
        assert link.dropped >= 80
    finally:
        link.close()
        if master is not None:
            os.close(master)
        os.close(slave)


@pytest.mark.parametrize("connection,words", [
    ("udpout:127.0.0.1", "HOST:PORT"), ("udpout:127.0.0.1:99999", "1..65535"),
    ("tcp:127.0.0.1:0", "1..65535"), ("bogus:1234", "not a MAVLink connection"),
    ("udpout:no-such-host.invalid:14550", "cannot resolve"),
    ("/dev/ttyDOESNOTEXIST,921600", "cannot open MAVLink serial port"),
    ("/dev/ttyS0,fast", "baud"),
])
def test_bad_connections_fail_at_start_with_the_fix(connection, words):
    with pytest.raises(JetsegError) as e:
        MavlinkLink(connection)
    assert words in str(e.value) and "fix:" in str(e.value)


def test_refused_tcp_and_bad_ids_fail_at_start():
    with pytest.raises(JetsegError, match="connection refused|Connection refused"):
        MavlinkLink("tcp:127.0.0.1:{}".format(free_port()))
    for kw in (dict(sysid=0), dict(sysid=256), dict(compid=300)):
        with pytest.raises(JetsegError, match="1..255"):
            MavlinkLink("udpout:127.0.0.1:{}".format(free_port()), **kw)


def test_named_values_are_rate_limited_and_sources_announced():
    port = free_port()
    rx = receiver(port)
    em = MavlinkEmitter("udpout:127.0.0.1:{}".format(port), named_hz=0.5,
                        named_classes=["Road"])
    cam = Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV)
    obs = ObstacleDistances(geometry(), ["Road"], names=NAMES).measure(render(W, H, cam, WALLS))
    rec = {"time": time.time(), "fps": 30.0, "latency_ms": 12.0, "fractions": {"Road": 0.4},
           "horizon": {"confidence": 0.9, "vehicle_roll_deg": 2.0, "vehicle_pitch_deg": -1.0},
           "obstacles": obs.as_dict()}
    try:
        for _ in range(40):
            em.send_record(rec)
        got = collect(rx, ["OBSTACLE_DISTANCE", "NAMED_VALUE_FLOAT", "STATUSTEXT"], timeout=3,
                      count=100)
    finally:
        em.close()
    names = [m.name for m in got["NAMED_VALUE_FLOAT"]]
    assert sorted(names) == sorted(["hz_roll", "hz_pitch", "hz_conf", "obs_near", "fps",
                                    "lat_ms", "f_Road"])                # one batch only
    assert 1 <= len(got["OBSTACLE_DISTANCE"]) <= 40         # a burst: newer ones supersede
    assert [m.text for m in got["STATUSTEXT"]] == ["jetseg: height config, attitude level"]


def test_pymavlink_is_optional_for_the_runtime():
    code = ("import sys; sys.modules['pymavlink'] = None\n"
            "import jetseg, jetseg.autopilot, jetseg.autopilot.mavlink, jetseg.cli.camera\n"
            "from jetseg.autopilot.mavlink import dialect\n"
            "try:\n    dialect()\nexcept jetseg.JetsegError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    assert "needs pymavlink" in r.stdout and "jetseg[mavlink]" in r.stdout


# ---- the camera, end to end ------------------------------------------------------------
def scene_clip(tmp_path, cam, frames=30):
    frame = to_bgr(render(W, H, cam, WALLS))
    return write_video(tmp_path / "walls.avi", frames, (W, H), fps=10.0,
                       frame_fn=lambda i: frame)


def camera(model, clip, *args, timeout=120):
    return subprocess.Popen([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip,
                             "--headless", "--input-loop", "-1", "--free-classes", "Road",
                             "--sky-classes", "Sky", "--hfov", str(HFOV), "--vfov", str(VFOV)]
                            + [str(a) for a in args], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_camera_sends_obstacle_distances_compensated_by_the_autopilots_attitude(tmp_path):
    model = colour_net(tmp_path / "walls.onnx", W, H)
    cam = Camera(2.0, pitch=-10, hfov=HFOV, vfov=VFOV, roll_v=10.0, pitch_v=-3.0)
    clip = scene_clip(tmp_path, cam)
    port = free_port()
    rx = receiver(port)
    proc = camera(model, clip, "--emit", "mavlink:udpout:127.0.0.1:{}".format(port),
                  "--camera-height", "1.0", "--camera-pitch", "-10")
    try:
        assert collect(rx, ["HEARTBEAT"], timeout=60)["HEARTBEAT"], "no heartbeat"
        fc = rx.mav                                            # reply as the autopilot
        end, live = time.time() + 30, []
        while time.time() < end and len(live) < 3:
            fc.attitude_send(0, np.radians(10.0), np.radians(-3.0), 0, 0, 0, 0)
            slant = 200 / np.cos(np.radians(10)) / np.cos(np.radians(3))     # 2 m up, tilted
            fc.distance_sensor_send(0, 20, 4000, int(round(slant)), 0, 0,
                                    mav.MAV_SENSOR_ROTATION_PITCH_270, 0)
            m = rx.recv_match(type=["OBSTACLE_DISTANCE", "STATUSTEXT"], blocking=True,
                              timeout=0.1)
            if m is not None and m.get_type() == "STATUSTEXT":
                live.append(m.text) if "rangefinder" in m.text else None
            elif m is not None and live:
                live.append(m)
        texts = [x for x in live if isinstance(x, str)]
        msgs = [x for x in live if not isinstance(x, str)]
        assert texts == ["jetseg: height rangefinder, attitude ATTITUDE"], live
        assert msgs, "no OBSTACLE_DISTANCE after the live geometry switched on"
        assert_walls(msgs[-1].distances, 2.0)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_camera_refuses_bad_mavlink_and_geometry_in_one_line(tmp_path):
    model = colour_net(tmp_path / "walls.onnx", W, H)
    clip = scene_clip(tmp_path, Camera(1.5, pitch=-10), frames=3)
    cases = [
        (["--emit", "mavlink:/dev/ttyNOPE0,921600"], "cannot open MAVLink serial port"),
        (["--emit", "mavlink:udpout:127.0.0.1:70000"], "1..65535"),
        (["--emit", "mavlink:telnet:1.2.3.4"], "not a MAVLink connection"),
        (["--emit", "jsonl:x.jsonl", "--camera-height", "0"], "camera height"),
        (["--emit", "mavlink:udpout:127.0.0.1:9", "--camera-pitch", "120"], "camera pitch"),
        (["--emit", "mavlink:udpout:127.0.0.1:9", "--vfov", "200"], "field of view"),
        (["--emit", "udp://127.0.0.1:9", "--calibration", str(tmp_path / "nope.json"),
          "--camera-height", "1"], "calibration file not found"),
    ]
    for args, words in cases:
        p = camera(model, clip, *args)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "fix:" in lines[0], (args, err)


def test_emit_sink_feeds_live_geometry_from_its_mavlink_link():
    port = free_port()
    rx = receiver(port)
    geo = geometry(height=1.0)
    sig = Signals(NAMES, ["Sky"], ["Road"], camera=geo,
                  obstacles=ObstacleDistances(geo, ["Road"], names=NAMES))
    sink = EmitSink(["mavlink:udpout:127.0.0.1:{}".format(port)], sig, live=False)
    assert sink.vehicle is not None
    cam = Camera(1.0, pitch=-10, hfov=HFOV, vfov=VFOV)

    class Res(object):
        classes = render(W, H, cam, WALLS)
        frame_id, captured_at, latency_ms, width, height = 0, time.time(), 5.0, W, H

        def class_fractions(self):
            return dict((n, float((self.classes == i).mean())) for i, n in enumerate(NAMES))
    try:
        sink.write(Res())
        od = collect(rx, ["OBSTACLE_DISTANCE"])["OBSTACLE_DISTANCE"]
    finally:
        sink.close()
    assert od and od[0].time_usec == int(Res.captured_at * 1e6)
    assert_walls(od[0].distances, 1.0)


def test_mavlink_alone_measures_the_horizon_only_for_its_named_values():
    """OBSTACLE_DISTANCE needs obstacles every frame; the horizon and class shares go out
    only in the rate-limited NAMED_VALUE_FLOATs, so a MAVLink-only sink measures them only
    then. A JSON target next to it needs them every frame."""
    geo = geometry(height=1.0)
    classes = render(W, H, Camera(1.0, pitch=-10, hfov=HFOV, vfov=VFOV), WALLS)

    class Res(object):
        frame_id, captured_at, latency_ms, width, height = 0, time.time(), 5.0, W, H

        def __init__(self):
            self.classes = classes

        def class_fractions(self):
            return dict((n, float((classes == i).mean())) for i, n in enumerate(NAMES))

    class Kept(Signals):
        def record(self, *a, **k):
            self.kept.append(Signals.record(self, *a, **k))
            return self.kept[-1]
    for uris, measured in ((["mavlink:udpout:127.0.0.1:9"], 1),
                           (["mavlink:udpout:127.0.0.1:9", "udp://127.0.0.1:9"], 5)):
        sig = Kept(NAMES, ["Sky"], ["Road"], camera=geo,
                   obstacles=ObstacleDistances(geo, ["Road"], names=NAMES))
        sig.kept = []
        sink = EmitSink(uris, sig, live=False, named_hz=0.5)
        try:
            for _ in range(5):
                sink.emit(Res())
        finally:
            sink.close()
        assert len(sig.kept) == 5 and all(r["obstacles"] for r in sig.kept)
        assert sum(r["horizon"] is not None for r in sig.kept) == measured, uris
        assert sum(r["fractions"] is not None for r in sig.kept) == measured, uris


def test_example_monitor_prints_what_the_autopilot_sees(tmp_path):
    model = colour_net(tmp_path / "walls.onnx", W, H)
    clip = scene_clip(tmp_path, Camera(1.5, pitch=-10, hfov=HFOV, vfov=VFOV))
    port = free_port()
    mon = subprocess.Popen([sys.executable, str(ROOT / "examples" / "mavlink_monitor.py"),
                            "udpin:127.0.0.1:{}".format(port), "--count", "5", "--timeout",
                            "60", "--attitude", "0,0", "--height", "1.5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = camera(model, clip, "--emit", "mavlink:udpout:127.0.0.1:{}".format(port),
                  "--camera-pitch", "-10")                 # height only from the "autopilot"
    try:
        out, err = mon.communicate(timeout=120)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert mon.returncode == 0, out + err
    assert "component 1/196: type 18, autopilot 8" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("obstacles")]
    assert len(lines) == 5
    assert "nearest  6." in lines[-1] or "nearest  5." in lines[-1], lines[-1]
