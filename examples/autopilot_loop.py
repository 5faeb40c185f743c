#!/usr/bin/env python3
"""A companion-computer loop: read jetseg's per-frame JSON over UDP, print a command.

    jetseg-camera --engine engines/camvid.onnx csi://0 --headless --emit udp://127.0.0.1:14560
    python3 examples/autopilot_loop.py --port 14560

Each record (schema jetseg.autopilot/1, see jetseg/autopilot/emit.py) carries the horizon (roll, pitch,
confidence), free-space sectors with a suggested heading and the gates that fired. This loop
turns them into the attitude/heading command a flight controller would get (a real one
would send MAVLink SET_ATTITUDE_TARGET; here it is printed). Stale or low-confidence data
makes it hold attitude rather than steer.
"""
import argparse
import json
import socket
import time


def command(rec, max_age_ms=250.0, min_confidence=0.3, gain=0.5, min_clearance_m=3.0):
    """A dict command from one record: level the wings, fly toward free space, hold short
    of obstacles, pull up."""
    cmd = {"frame": rec.get("frame_id"), "mode": "hold", "roll_deg": 0.0, "pitch_deg": 0.0,
           "yaw_rate_dps": 0.0, "why": []}
    age = (time.time() - rec.get("time", 0)) * 1000.0
    if rec.get("latency_ms", 0) > max_age_ms or age > 5000:
        cmd["why"].append("stale data ({:.0f} ms)".format(max(age, rec.get("latency_ms", 0))))
        return cmd
    h = rec.get("horizon") or {}
    if h.get("confidence", 0) >= min_confidence:
        cmd["mode"] = "steer"
        cmd["roll_deg"] = round(-gain * h["roll_deg"], 2)        # counter the tilt
        cmd["pitch_deg"] = round(-gain * 30.0 * h["pitch"], 2)   # horizon high -> nose up
    elif h:
        cmd["why"].append("horizon unsure: " + str(h.get("reason") or h.get("confidence")))
    fs = rec.get("free_space") or {}
    if fs and not fs.get("blocked"):
        cmd["yaw_rate_dps"] = round(gain * fs["heading_deg"], 2)
    elif fs:
        cmd["mode"] = "hold"
        cmd["why"].append("no free space ahead")
    near = (rec.get("obstacles") or {}).get("nearest_m")     # with --camera-height
    if near is not None and near < min_clearance_m:
        cmd["mode"] = "hold"
        cmd["why"].append("obstacle {:.1f} m at {:+.0f} deg".format(
            near, rec["obstacles"]["nearest_bearing_deg"]))
    if "pull_up" in rec.get("gates", []):
        cmd["mode"] = "pull_up"
        cmd["pitch_deg"] = 10.0
        cmd["why"].append("ground fills the view")
    return cmd


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=14560)
    p.add_argument("--count", type=int, default=0, help="stop after N records (0: never)")
    p.add_argument("--timeout", type=float, default=5.0, help="give up after N s of silence")
    args = p.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    sock.settimeout(args.timeout)
    n = 0
    try:
        while not args.count or n < args.count:
            try:
                data, _ = sock.recvfrom(65536)
            except socket.timeout:
                print("no data for {:.0f} s: holding attitude".format(args.timeout))
                break
            rec = json.loads(data.decode("utf-8"))
            if rec.get("schema", "").split("/")[0] != "jetseg.autopilot":
                continue
            c = command(rec)
            n += 1
            print("frame {:>5} {:<8} roll {:+6.1f} pitch {:+6.1f} yaw-rate {:+6.1f}  {}".format(
                c["frame"], c["mode"], c["roll_deg"], c["pitch_deg"], c["yaw_rate_dps"],
                "; ".join(c["why"])), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    main()
