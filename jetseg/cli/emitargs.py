"""``--emit`` wiring for jetseg-camera: the camera-geometry and MAVLink flags and the sink
they make (signals, obstacle distances, emitters). Every bad value is a JetsegError at
start-up (one line, exit code 2)."""
import math

from jetseg.errors import JetsegError


def add_geometry_args(g):
    """Camera geometry (obstacle distances, horizon attitude) and MAVLink identity flags."""
    g.add_argument("--camera-height", type=float, metavar="M",
                   help="camera height above the ground in metres, for obstacle distances "
                        "(default: none; a MAVLink link's DISTANCE_SENSOR or "
                        "GLOBAL_POSITION_INT.relative_alt replaces it live)")
    g.add_argument("--camera-pitch", type=float, default=0.0, metavar="DEG",
                   help="camera mount pitch in degrees, positive nose-up: tilted down 20 "
                        "degrees is -20 (default %(default)s)")
    g.add_argument("--vfov", type=float, metavar="DEG",
                   help="camera vertical field of view (default: square pixels from --hfov)")
    g.add_argument("--calibration", metavar="FILE",
                   help="camera intrinsics instead of --hfov/--vfov: JSON {fx, fy, cx, cy, "
                        "width, height} or OpenCV's calibration YAML (camera_matrix, "
                        "image_width, image_height)")
    g.add_argument("--max-range", type=float, default=20.0, metavar="M",
                   help="far limit of obstacle distances in metres (default %(default)s)")
    g.add_argument("--obstacle-increment", default="5", metavar="DEG|fov",
                   help="OBSTACLE_DISTANCE sector width: 5 (default) = 72 sectors round the "
                        "vehicle, read by PX4 and ArduPilot; 'fov' = 72 sectors across the "
                        "camera's view (finer; ArduPilot only)")
    g.add_argument("--mavlink-sysid", type=int, default=1, metavar="N",
                   help="MAVLink system id: the vehicle's, as companion computers use "
                        "(default %(default)s)")
    g.add_argument("--mavlink-compid", type=int, default=196, metavar="N",
                   help="MAVLink component id (default %(default)s: "
                        "MAV_COMP_ID_OBSTACLE_AVOIDANCE)")


def _split(text):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def camera_from_args(args):
    from jetseg.autopilot.obstacles import CameraGeometry
    kw = dict(height_m=args.camera_height, pitch_deg=args.camera_pitch)
    if args.calibration:
        return CameraGeometry.from_calibration(args.calibration, **kw)
    return CameraGeometry(hfov_deg=args.hfov, vfov_deg=args.vfov, **kw)


def emit_sink(args, net, source, stats):
    """The EmitSink of ``--emit`` (and its geometry) for this model and source."""
    if not (args.horizon_hz >= 0 and math.isfinite(args.horizon_hz)):
        raise JetsegError("--horizon-hz {} is not a rate".format(args.horizon_hz),
                          fix="give measurements a second, e.g. --horizon-hz 10, or 0 for "
                              "every frame")
    from jetseg.autopilot.emit import EmitSink, Signals
    from jetseg.autopilot.obstacles import ObstacleDistances
    camera = camera_from_args(args)
    hfov = args.hfov
    if camera.calibration:                       # free-space bearings from the calibration
        c = camera.calibration
        left, right = math.atan2(c["cx"], c["fx"]), math.atan2(c["width"] - c["cx"], c["fx"])
        hfov = math.degrees(left + right)
    signals = Signals(net.classes, _split(args.sky_classes), _split(args.free_classes),
                      args.sectors, hfov, model=args.model,
                      frame_rate=None if source.live else (source.fps or 30.0), camera=camera,
                      horizon_hz=args.horizon_hz)
    mavlink = any(str(u).startswith("mavlink:") for u in args.emit)
    if signals.free and (args.camera_height is not None or mavlink):
        signals.obstacles = ObstacleDistances(camera, signals.free, net.classes,
                                              args.obstacle_increment, args.max_range)
    elif mavlink:
        raise JetsegError("--emit mavlink needs free classes for obstacle distances, and this "
                          "model has no class named Road",
                          fix="name the ground classes, e.g. --free-classes Grass,Pavement")
    return EmitSink(args.emit, signals, stats, live=source.live, sysid=args.mavlink_sysid,
                    compid=args.mavlink_compid, named_classes=signals.sky + signals.free)
