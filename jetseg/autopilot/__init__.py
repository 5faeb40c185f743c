"""Signals an autopilot can use, computed from a class map: horizon, free space, gates.

    from jetseg import autopilot
    h = autopilot.estimate_horizon(res, sky_classes=["Sky"])        # or res.classes + names=
    h.roll_deg, h.pitch, h.confidence, h.reason
    s = autopilot.free_space(res, free_classes=["Road"], sectors=9)
    s.fractions, s.sector, s.heading_deg
    autopilot.check_gates(res, [autopilot.pull_up(["Sky"])])       # -> ["pull_up"] or []

Image coordinates are continuous (pixel (i, j) covers [i, i+1) x [j, j+1)); the horizon's
roll, pitch and confidence conventions are in ``jetseg.autopilot.horizon``. No signal ever
raises for a frame without a usable answer (confidence 0 and a ``reason`` instead); mistakes
a user can fix (an unknown class name, an image where a class map belongs) raise JetsegError.

Everything here is vectorised numpy (no per-pixel Python) and runs on Python 3.6.

    horizon     Horizon, estimate_horizon, HorizonFilter (linefit: the line fitting steps)
    freespace   FreeSpace, free_space, bearing_deg, RPI_V2_HFOV_DEG
    gates       Gate, pull_up, check_gates, class_fractions
    classmap    class maps and class names in (shared by the three)
    camera      CameraGeometry: the lens and mount (flat-ground pinhole model)
    obstacles   ObstacleDistances: class map -> distances per sector
    mavlink     MavlinkLink, MavlinkEmitter: OBSTACLE_DISTANCE, heartbeat, named values
    links       MAVLink connection strings -> UDP, TCP or serial transports
    emit        --emit: one JSON record a frame over UDP, to a JSONL file, or MAVLink
"""
from jetseg.autopilot.freespace import RPI_V2_HFOV_DEG, FreeSpace, bearing_deg, free_space
from jetseg.autopilot.gates import Gate, check_gates, class_fractions, pull_up
from jetseg.autopilot.horizon import PITCH_LIMIT, Horizon, HorizonFilter, estimate_horizon
# obstacle distances (the flat-ground camera model); MAVLink lives in jetseg.autopilot.mavlink
from jetseg.autopilot.obstacles import CameraGeometry, ObstacleDistances, Obstacles

__all__ = ["Horizon", "HorizonFilter", "estimate_horizon", "PITCH_LIMIT", "FreeSpace",
           "free_space", "bearing_deg", "RPI_V2_HFOV_DEG", "Gate", "pull_up", "check_gates",
           "class_fractions", "CameraGeometry", "ObstacleDistances", "Obstacles"]
