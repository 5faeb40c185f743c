#!/usr/bin/env python3
"""What the autopilot sees: jetseg's MAVLink, printed (obstacle distances, horizon, health).

    jetseg-camera --engine engines/camvid.onnx csi://0 --headless --camera-height 1.2 \\
        --camera-pitch -10 --emit mavlink:udpout:127.0.0.1:14550
    python3 examples/mavlink_monitor.py udpin:127.0.0.1:14550

One line per OBSTACLE_DISTANCE: the nearest obstacle and the sectors in view, left to right,
one character each: a digit = metres to the obstacle (+ for 10 m or more), '-' = no
obstacle up to max_distance, '?' = not judged. Sectors are read as ArduPilot's proximity
library reads them (0, 65535, below min_distance and above max_distance carry no
obstacle). NAMED_VALUE_FLOAT values (horizon, fps, class shares) are printed at most once a
second, HEARTBEAT once per component, STATUSTEXT as it comes.

With --attitude ROLL,PITCH and --height M it also plays the flight controller: it streams
ATTITUDE and a down-facing DISTANCE_SENSOR at 10 Hz, which jetseg uses for live geometry.
Needs pymavlink (pip install pymavlink).
"""
import argparse
import math
import os
import time

os.environ.setdefault("MAVLINK20", "1")
from pymavlink import mavutil  # noqa: E402


def strip(msg):
    """(nearest (m, bearing) or None, one character per sector in view)."""
    inc = msg.increment_f or msg.increment
    chars, nearest = [], None
    for i, d in enumerate(msg.distances):
        if d == 65535:
            continue
        if d == 0 or d < msg.min_distance or d > msg.max_distance:
            chars.append("-" if d == msg.max_distance + 1 else "?")
            continue
        chars.append(str(d // 100) if d < 1000 else "+")
        bearing = (msg.angle_offset + i * inc + 180.0) % 360.0 - 180.0
        if nearest is None or d / 100.0 < nearest[0]:
            nearest = (d / 100.0, bearing)
    return nearest, "".join(chars)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("connection", nargs="?", default="udpin:127.0.0.1:14550",
                   help="pymavlink connection (default %(default)s)")
    p.add_argument("--count", type=int, default=0, help="stop after N OBSTACLE_DISTANCE")
    p.add_argument("--timeout", type=float, default=10.0, help="give up after N s of silence")
    p.add_argument("--attitude", help="ROLL,PITCH degrees to report as the flight controller")
    p.add_argument("--height", type=float, help="metres to report on a down rangefinder")
    args = p.parse_args()
    conn = mavutil.mavlink_connection(args.connection, source_system=1, source_component=1)
    mav = conn.mav
    seen, named, last_named, last_reply, n = set(), {}, 0.0, 0.0, 0
    last_data = time.time()
    while not args.count or n < args.count:
        m = conn.recv_match(blocking=True, timeout=0.1)
        now = time.time()
        if m is None:
            if now - last_data > args.timeout:
                print("no MAVLink for {:.0f} s".format(args.timeout), flush=True)
                return 1
            continue
        last_data = now
        kind, src = m.get_type(), (m.get_srcSystem(), m.get_srcComponent())
        if kind == "HEARTBEAT" and src not in seen:
            seen.add(src)
            print("component {}/{}: type {}, autopilot {}, status {}".format(
                src[0], src[1], m.type, m.autopilot, m.system_status), flush=True)
            if args.attitude or args.height:
                print("answering as the flight controller", flush=True)
        if seen and (args.attitude or args.height) and now - last_reply >= 0.1:
            last_reply = now                                   # 10 Hz, as autopilots stream
            roll, pitch = (float(v) for v in (args.attitude or "0,0").split(","))
            mav.attitude_send(0, math.radians(roll), math.radians(pitch), 0, 0, 0, 0)
            if args.height:
                slant = args.height / math.cos(math.radians(roll)) / math.cos(math.radians(pitch))
                mav.distance_sensor_send(0, 20, 4000, int(round(slant * 100)), 0, 0,
                                         mavutil.mavlink.MAV_SENSOR_ROTATION_PITCH_270, 0)
        if kind == "NAMED_VALUE_FLOAT":
            named[m.name] = m.value
        elif kind == "OBSTACLE_DISTANCE":
            n += 1
            if named and now - last_named >= 1.0:
                last_named = now
                print("values     " + "  ".join("{} {:.2f}".format(k, v)
                                                for k, v in sorted(named.items())), flush=True)
            nearest, chars = strip(m)
            near = "nearest {:5.2f} m at {:+4.0f} deg".format(*nearest) if nearest else \
                "no obstacle" + " " * 16
            print("obstacles  {}  [{:.1f}..{:.1f} m, {:.2f} deg sectors]  |{}|".format(
                near, m.min_distance / 100.0, m.max_distance / 100.0,
                m.increment_f or m.increment, chars), flush=True)
        elif kind == "STATUSTEXT":
            print("text       " + m.text, flush=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        pass
