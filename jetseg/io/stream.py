"""``jetseg.stream()``: what autopilot code embeds.

    import jetseg
    with jetseg.stream("csi://0", "engines/camvid.onnx") as results:
        for res in results:                  # live: always the newest result, no backlog
            steer(res.class_fractions(), res.latency_ms)

    s = jetseg.stream("/dev/video0", "net.onnx")
    res = s.latest()                         # or poll at your own pace (None until the first)

The camera loop runs in background threads; a consumer slower than the camera never builds
a backlog on a live source (older results are dropped); iterating over a file gives every
frame, while polling ``latest()`` never holds the loop back.
"""
import queue
import threading

from jetseg.io.pipeline import Pipeline
from jetseg.io.worker import put_latest as _put_latest
from jetseg.core.segmenter import Segmenter
from jetseg.io.sources import open_source

_END = object()


class Stream(object):
    def __init__(self, source, model, sinks=(), source_options=None, max_frames=None,
                 **segmenter_options):
        self.segmenter = model if isinstance(model, Segmenter) else Segmenter(
            model, **segmenter_options)
        self.source = source if hasattr(source, "read") else open_source(
            source, **(source_options or {}))
        self.live = bool(getattr(self.source, "live", False))
        self._q = queue.Queue(maxsize=1 if self.live else 4)
        self._latest = None
        self._polling = False
        self.pipeline = Pipeline(self.source, self.segmenter, sinks=sinks,
                                 on_result=[self._push], max_frames=max_frames)
        self.error = None
        self._thread = threading.Thread(target=self._run, name="jetseg-stream")
        self._thread.daemon = True
        self._thread.start()

    def _push(self, res):
        self._latest = res
        if self.live or self._polling:
            _put_latest(self._q, res)
        else:
            while not self.pipeline.stopping.is_set():
                if self._polling:           # began polling while we waited: never block
                    _put_latest(self._q, res)
                    return
                try:
                    self._q.put(res, timeout=0.1)
                    return
                except queue.Full:
                    pass

    def _run(self):
        try:
            self.pipeline.run()
        except BaseException as e:
            self.error = e
        finally:
            if self.live or self._polling:
                _put_latest(self._q, _END)
            else:
                self._put_end()

    def _put_end(self):
        while True:
            try:
                self._q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.pipeline.stopping.is_set() or self._polling:
                    _put_latest(self._q, _END)
                    return

    @property
    def stats(self):
        return self.pipeline.stats

    def latest(self):
        """The newest result so far (None before the first); never blocks. A consumer that
        polls this way never holds the loop back, files included (frames may be skipped)."""
        self._polling = True
        return self._latest

    @property
    def running(self):
        """True until the source has ended (or the stream was closed)."""
        return self._thread.is_alive()

    def __iter__(self):
        while True:
            res = self._q.get()
            if res is _END:
                self._thread.join()
                if self.error is not None:
                    raise self.error
                return
            yield res

    def close(self):
        self.pipeline.stop()
        self._thread.join(timeout=10.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stream(source, model, **options):
    """Results of ``model`` over ``source`` (a URI, see jetseg.io.sources); see the module doc."""
    return Stream(source, model, **options)
