"""What ``jetseg segment`` and ``jetseg-camera`` share around the one Pipeline: outputs by URI,
the video flags, the ``--stats`` and ``--legend`` report, and how a run ends: SIGTERM and
SIGHUP (an SSH session dropping) stop it cleanly, Ctrl-C too with exit code 130 (a second
Ctrl-C quits at once); every output is finished either way. At the end a line per file output
says what was written where; input that had to be skipped (unreadable images of a folder,
undecodable frames of a damaged video) ends the run with its one-line error and exit code 2,
after everything else was processed.

    pipe, report = open_pipeline(args, net, source, ["out.mp4"])
    return run_pipeline(pipe, report, "jetseg", args, summary=Stats.brief)
"""
import os
import signal
import sys
import threading

import numpy as np

from jetseg.cli.common import format_shares
from jetseg.core.labels import class_fractions
from jetseg.errors import JetsegError
from jetseg.files import write_image
from jetseg.imagesize import DEFAULT_MEGAPIXELS, ENV as MEGAPIXELS_ENV
from jetseg.io.outputs import open_sink
from jetseg.io.pipeline import Pipeline


def add_video_args(p):
    """The flags of video outputs (files, rtp://, rtsp://), as jetson-utils' videoOutput."""
    g = p.add_argument_group("video out")
    g.add_argument("--output-codec", default="h264", metavar="CODEC",
                   help="h264 (default), h265 or mjpeg, for video files and streams")
    g.add_argument("--bitrate", type=int, metavar="KBITS",
                   help="video bitrate in kbit/s (default: constant quality for files, 4000 "
                        "for streams and hardware encoders)")
    g.add_argument("--source-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="a live source that gives no frame this long is reported, marked "
                        "stale and reopened (default %(default)s; 0: never)")


def add_input_args(p):
    """The flags of file inputs every command that reads them shares."""
    p.add_argument("--max-megapixels", type=float, metavar="MP",
                   help="refuse images bigger than this, read from their header before "
                        "decoding (default ${} or {}: a 4 GB Jetson Nano copes; 0: no "
                        "limit)".format(MEGAPIXELS_ENV, DEFAULT_MEGAPIXELS))


def _same_file(a, b):
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def open_pipeline(args, net, source, outputs, max_frames=None):
    """A Pipeline of ``net`` over ``source``, a sink per output URI, and the run's Report.

    One picture goes to a plain image file only when the source is ``single`` (one image
    file, read once); anything else needs a folder, a %d pattern or a video."""
    if args.visualize == "classes" and len(net.classes) > 256:
        raise JetsegError("class-id PNGs are 8-bit and the model has {} classes".format(
            len(net.classes)), fix="use --visualize overlay")
    timeout = getattr(args, "source_timeout", 5.0)
    pipe = Pipeline(source, net, max_frames=max_frames, source_timeout=timeout or None)
    for uri in outputs:
        if _same_file(uri, getattr(source, "uri", "")):
            raise JetsegError("the output is the input file", path=uri,
                              fix="write the result to another name")
        try:
            pipe.sinks.append(open_sink(uri, args.visualize, fps=source.fps, on_quit=pipe.stop,
                                        many=not source.single, live=source.live,
                                        codec=getattr(args, "output_codec", None),
                                        bitrate=getattr(args, "bitrate", None)))
        except BaseException:
            for sink in pipe.sinks:     # those already open stop their threads
                sink.close()
            raise
    report = Report(net, pipe.stats, live=source.live, per_frame=args.stats, legend=args.legend)
    if report.active:
        pipe.on_result.append(report)
    return pipe, report


def run_pipeline(pipe, report, prog, args, summary, linger=None):
    """Run to the end of the source (or ``stop()``, SIGTERM, SIGHUP, q in a window, Ctrl-C),
    then print ``summary(stats)`` (unless --quiet without --stats) and finish the report.
    ``linger``: a web view that keeps showing the last frame after the input ends, until a
    signal. Returns the exit code: 0, or 130 after Ctrl-C."""
    main = threading.current_thread() is threading.main_thread()
    stopped = []
    lingering, done = threading.Event(), threading.Event()

    def on_signal(signum, frame):
        if lingering.is_set():
            done.set()                      # quitting the lingering page: a normal end
            return
        if stopped and signum == signal.SIGINT:
            raise KeyboardInterrupt         # a second Ctrl-C: quit now
        if signum == signal.SIGINT:
            sys.stderr.write("{}: stopping; finishing the outputs (Ctrl-C again to quit "
                             "now)\n".format(prog))
        stopped.append(signum)
        pipe.stop()

    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP")
                                              else [])
    previous = dict((s, signal.signal(s, on_signal)) for s in sigs) if main else {}
    try:
        try:
            pipe.run()
        except KeyboardInterrupt:
            stopped.append(signal.SIGINT)
        code = 130 if signal.SIGINT in stopped else 0
        if code:
            sys.stderr.write("{}: interrupted; outputs written so far are complete\n".format(
                prog))
        if args.stats or not args.quiet:
            print(summary(pipe.stats))
        if not args.quiet:
            for sink in pipe.sinks:
                what = getattr(sink, "written", lambda: None)()
                if what:
                    print("wrote " + what)
        report.finish()
        if linger is not None and not stopped and main:
            sys.stderr.write("{}: the input ended; http://{}/ shows its last frame until "
                             "Ctrl-C\n".format(prog, linger.address))
            sys.stdout.flush()
            lingering.set()
            while not done.wait(0.5):
                pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if linger is not None:
            linger.shutdown()
    problem = getattr(pipe.source, "incomplete", lambda: None)()
    if problem is not None and not code:
        raise problem           # the rest was processed and written: now say what was not
    return code


class Report(object):
    """``--stats`` and ``--legend``, the same for every command: an ``on_result`` hook of the
    Pipeline that sums the class pixels of the run.

    per_frame  (--stats) a line per frame: its name, frame id, fps, latency p50 and its
               biggest classes; a live source at most one line a second. At the end of a run
               of several frames: the class shares over the whole run.
    legend     (--legend FILE) every class with its colour, written when the run starts (a
               bad path fails at once) and again at its end with each class's share of the
               pixels over the run.
    """

    def __init__(self, net, stats, live=False, per_frame=False, legend=None, out=None):
        self.net, self.stats, self.live = net, stats, live
        self.per_frame, self.legend = bool(per_frame), legend
        self.counts = np.zeros(len(net.classes), np.int64)
        self.last = None
        self.out = out or sys.stdout
        if legend:
            write_image(legend, net.legend())

    @property
    def active(self):
        return bool(self.per_frame or self.legend)

    def fractions(self):
        """{name: share of the pixels} over the run so far."""
        return class_fractions(self.counts, self.net.classes)

    def __call__(self, res):
        self.counts += res.class_counts()
        if not self.per_frame or (self.live and self.last is not None
                                  and res.captured_at - self.last < 1.0):
            return
        self.last = res.captured_at
        self.out.write("{}  frame {:>6}  {:5.1f} fps  latency p50 {:6.1f} ms  {}\n".format(
            res.name, res.frame_id, self.stats.fps, self.stats.stages["latency"].percentile(50),
            format_shares(res.class_fractions())))
        self.out.flush()

    def finish(self):
        """The end of a run: the legend with the run's shares, the --stats share line."""
        if not self.counts.any():
            return
        if self.legend:
            shares = self.counts / float(self.counts.sum())
            write_image(self.legend, self.net.legend(fractions=shares))
        if self.per_frame and self.stats.frames > 1:
            self.out.write("classes: {}\n".format(format_shares(self.fractions(), limit=12)))
            self.out.flush()
