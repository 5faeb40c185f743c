"""What ``jetseg segment`` and ``jetseg-camera`` share around the one Pipeline: outputs by URI,
the ``--stats`` and ``--legend`` report, and how a run ends (SIGTERM stops it cleanly, Ctrl-C
too with exit code 130; every output is finished either way).

    pipe, report = open_pipeline(args, net, source, ["out.mp4"])
    return run_pipeline(pipe, report, "jetseg", args, summary=Stats.brief)
"""
import signal
import sys
import threading

import numpy as np

from jetseg.cli.common import format_shares
from jetseg.core.labels import class_fractions
from jetseg.errors import JetsegError
from jetseg.files import write_image
from jetseg.io.outputs import open_sink
from jetseg.io.pipeline import Pipeline


def open_pipeline(args, net, source, outputs, max_frames=None):
    """A Pipeline of ``net`` over ``source``, a sink per output URI, and the run's Report.

    One picture goes to a plain image file only when the source is ``single`` (one image
    file, read once); anything else needs a folder, a %d pattern or a video."""
    if args.visualize == "classes" and len(net.classes) > 256:
        raise JetsegError("class-id PNGs are 8-bit and the model has {} classes".format(
            len(net.classes)), fix="use --visualize overlay")
    pipe = Pipeline(source, net, max_frames=max_frames)
    for uri in outputs:
        pipe.sinks.append(open_sink(uri, args.visualize, fps=source.fps, on_quit=pipe.stop,
                                    many=not source.single))
    report = Report(net, pipe.stats, live=source.live, per_frame=args.stats, legend=args.legend)
    if report.active:
        pipe.on_result.append(report)
    return pipe, report


def run_pipeline(pipe, report, prog, args, summary):
    """Run to the end of the source (or ``stop()``, SIGTERM, q in a window, Ctrl-C), then
    print ``summary(stats)`` (unless --quiet without --stats) and finish the report.
    Returns the exit code: 0, or 130 after Ctrl-C."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *a: pipe.stop()) if main else None
    code = 0
    try:
        pipe.run()
    except KeyboardInterrupt:
        sys.stderr.write("{}: interrupted; outputs written so far are complete\n".format(prog))
        code = 130
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    if args.stats or not args.quiet:
        print(summary(pipe.stats))
    report.finish()
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
