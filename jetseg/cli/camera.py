"""``jetseg-camera``: the live demo, as short as jetson-inference's segnet.py.

    jetseg-camera --engine engines/camvid.onnx csi://0 display://0
    jetseg-camera --engine engines/camvid.onnx /dev/video0 --serve 127.0.0.1:8080
    jetseg-camera --engine engines/camvid.onnx drive.mp4 out.mp4 --headless --stats
    jetseg-camera --engine engines/camvid.onnx csi://0 flight.mp4 rtp://192.168.1.20:5600
    jetseg-camera --engine engines/camvid.onnx csi://0 --emit udp://127.0.0.1:14560 --headless
"""
import os
import sys

from jetseg.autopilot import RPI_V2_HFOV_DEG
from jetseg.cli.common import ArgumentParser, add_model_args, run_guarded, segmenter_from_args
from jetseg.cli.emitargs import add_geometry_args, emit_sink
from jetseg.cli.frontend import add_input_args, add_video_args, open_pipeline, run_pipeline
from jetseg.errors import JetsegError, log
from jetseg.io.pipeline import Stats
from jetseg.io.sources import FLIPS, open_source

DEFAULT_INPUT = "csi://0"       # as jetson-inference's segnet.py
INPUTS = "/dev/video0 (a USB camera), clip.mp4, rtsp://HOST/PATH or csi://N"


def build_parser():
    p = ArgumentParser(prog="jetseg-camera", description="Segment a live camera, "
                                "stream or video: display, record, serve to a browser.")
    add_model_args(p, primary="--engine")
    p.add_argument("input", nargs="?",
                   help="csi://0 (the default), /dev/video0, rtsp://..., rtp://@:1234, video, "
                        "images")
    p.add_argument("output", nargs="*", help="display://0, out.mp4 (H.264, playable after a "
                   "crash), rtp://HOST:5600, rtsp://@:8554/live, out_%%05d.jpg "
                   "(default display://0 unless --headless or --serve)")
    p.add_argument("--headless", action="store_true", help="no window")
    p.add_argument("--serve", metavar="HOST:PORT",
                   help="web view (MJPEG + stats); binds where told, e.g. 127.0.0.1:8080; "
                        "no window unless display://0 is given too")
    p.add_argument("--input-width", type=int,
                   help="capture width in pixels for cameras (default: the camera's own)")
    p.add_argument("--input-height", type=int,
                   help="capture height in pixels for cameras (default: the camera's own)")
    p.add_argument("--input-rate", type=float,
                   help="capture frame rate for cameras (default: the camera's own)")
    p.add_argument("--input-flip", choices=FLIPS, metavar="FLIP",
                   help="flip or rotate frames as captured: " + ", ".join(FLIPS))
    p.add_argument("--input-loop", type=int, default=0,
                   help="replay files N more times (-1: forever)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    add_input_args(p)
    add_video_args(p)
    a = p.add_argument_group("autopilot signals")
    a.add_argument("--emit", action="append", metavar="URI", default=[],
                   help="udp://HOST:PORT or jsonl:FILE: one JSON record a frame; "
                        "mavlink:CONNECTION (udpout:HOST:PORT, udpin:HOST:PORT, tcp:HOST:PORT, "
                        "/dev/ttyTHS1,921600): MAVLink for ArduPilot/PX4 (repeatable)")
    a.add_argument("--sky-classes", help="comma-separated sky class names (default: Sky)")
    a.add_argument("--free-classes", help="comma-separated free-space classes (default: Road)")
    a.add_argument("--sectors", type=int, default=9,
                   help="free-space sectors across the view (default %(default)s)")
    a.add_argument("--horizon-hz", type=float, default=5.0, metavar="HZ",
                   help="measure the horizon this often (default %(default)s, the rate of "
                        "MAVLink's named values; 0: every frame); records between carry the "
                        "filtered line predicted to their frame, with \"measured\": false")
    a.add_argument("--hfov", type=float, default=RPI_V2_HFOV_DEG,
                   help="camera horizontal field of view in degrees (default %(default)s: "
                        "Raspberry Pi camera v2)")
    add_geometry_args(a)
    p.add_argument("--debug", action="store_true", help="show tracebacks and details")
    p.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    return p


def open_input(args):
    """The source named, or the default CSI camera, saying so when it is not there."""
    opts = dict(width=args.input_width, height=args.input_height, rate=args.input_rate,
                flip=args.input_flip, loop=args.input_loop, max_megapixels=args.max_megapixels)
    if args.input is not None:
        return open_source(args.input, **opts)
    try:
        source = open_source(DEFAULT_INPUT, **opts)
    except JetsegError as e:
        raise JetsegError("no input given, so the default {} (a CSI camera) was tried: "
                          "{}".format(DEFAULT_INPUT, e.message),
                          fix="name the input: {}; for {} to work: {}".format(
                              INPUTS, DEFAULT_INPUT, e.fix))
    log.info("no input given: reading %s (the default)", DEFAULT_INPUT)
    return source


def run(args):
    net = segmenter_from_args(args)
    source = open_input(args)
    args.input = source.uri
    outputs = args.output or ([] if args.headless or args.serve else ["display://0"])
    pipe, report = open_pipeline(args, net, source, outputs, max_frames=args.max_frames)
    view = None
    if args.serve:              # a file input: the page stays up on its last frame
        from jetseg.io.web import WebView
        view = WebView(args.serve, net, args.visualize, title=os.path.basename(args.model),
                       stats=pipe.stats, linger=not source.live)
        pipe.sinks.append(view)
    if args.emit:
        emitter = emit_sink(args, net, source, pipe.stats)
        pipe.sinks.append(emitter)
        pipe.on_stale.append(emitter.on_stale)     # receivers learn the data went stale
    log.info("%r", net)
    log.info("%s -> %s", args.input, ", ".join(outputs + (["web " + args.serve]
                                                           if args.serve else [])) or "nothing")
    return run_pipeline(pipe, report, "jetseg-camera", args, summary=Stats.summary,
                        linger=view if view is not None and view.linger else None)


def main(argv=None):
    return run_guarded(build_parser(), run, argv, prog="jetseg-camera")


if __name__ == "__main__":
    sys.exit(main())
