"""The one loop behind ``jetseg segment``, ``jetseg-camera``, ``jetseg.stream()`` and
``jetseg bench``.

    capture thread --in queue--> inference (caller's thread) --out queue--> render thread
    (read, Segmenter.prepare)        (the model only)                        -> sinks, callbacks

Queues are bounded. A live source drops the oldest frame when inference falls behind
(latency first); files lose none (every input frame gives an output frame). A live source
that disappears is reopened with backoff; one that gives no frame for ``source_timeout``
seconds (a hung stream) is reported, ``stats.stale`` turns True (``on_stale`` hooks are
called with True, and with False when frames come again) and it is reopened. A sink that
fails is reported at once and closed (a recording keeps what it has); the others go on
and ``run()`` raises its error at the end (at once when no sink is left). ``stop()``
(Ctrl-C, SIGTERM, SIGHUP) ends the loop and every sink is closed, so a video being written
stays playable.
"""
import threading
import time

import numpy as np

from jetseg.errors import JetsegError, log
from jetseg.io.worker import put_latest as _put_latest

import queue

_END = object()


class Reservoir(object):
    """Fixed-size ring of the latest samples (allocated once; memory does not grow)."""

    def __init__(self, size=8192):
        self.values = np.zeros(size, np.float64)
        self.count = 0

    def add(self, v):
        self.values[self.count % len(self.values)] = v
        self.count += 1

    def samples(self):
        """The samples held (the latest ``size`` of them)."""
        return self.values[:min(self.count, len(self.values))]

    def percentile(self, q):
        held = self.samples()
        return float(np.percentile(held, q)) if len(held) else float("nan")


class Stats(object):
    """Per-stage latencies (ms) and throughput of a run."""

    STAGES = ("capture", "preprocess", "inference", "render", "latency")

    def __init__(self):
        self.stages = dict((s, Reservoir()) for s in self.STAGES)
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.start = time.time()
        self.end = None
        self.last_frame_at = None   # when the source last gave a frame
        self.stale = False          # a live source gave none for source_timeout seconds

    @property
    def stale_s(self):
        """Seconds since the source's last frame (since the start before the first)."""
        return time.time() - (self.last_frame_at or self.start)

    def add(self, stage, ms):
        self.stages[stage].add(ms)

    @property
    def elapsed(self):
        return (self.end or time.time()) - self.start

    @property
    def fps(self):
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    def brief(self):
        """One line: frames, time, fps and the median ms of each stage."""
        med = ", ".join("{} {:.1f}".format(s, self.stages[s].percentile(50))
                        for s in self.STAGES if self.stages[s].count)
        return "{} frame(s) in {:.2f}s ({:.1f} fps){}".format(
            self.frames, self.elapsed, self.fps, "; median ms: " + med if med else "")

    def summary(self):
        """Frames, fps, drops and reconnects, then p50/p99 of each stage, a line each."""
        lines = ["{} frames in {:.1f}s: {:.1f} fps{}{}".format(
            self.frames, self.elapsed, self.fps,
            ", {} dropped (live source, latency first)".format(self.dropped)
            if self.dropped else "",
            ", {} reconnects".format(self.reconnects) if self.reconnects else "")]
        for s in self.STAGES:
            r = self.stages[s]
            if r.count:
                lines.append("  {:<11} p50 {:7.1f} ms   p99 {:7.1f} ms".format(
                    s, r.percentile(50), r.percentile(99)))
        return "\n".join(lines)

    def as_dict(self):
        out = {"frames": self.frames, "fps": round(self.fps, 2), "dropped": self.dropped,
               "elapsed_s": round(self.elapsed, 3), "stale": self.stale}
        for s in self.STAGES:
            r = self.stages[s]
            if r.count:
                out[s + "_p50_ms"] = round(r.percentile(50), 2)
                out[s + "_p99_ms"] = round(r.percentile(99), 2)
        return out


class Pipeline(object):
    """Run ``segmenter`` over ``source`` into ``sinks``; see the module doc.

    sinks           objects with ``write(result)`` and ``close()`` (see jetseg.io.outputs)
    on_result       callables ``f(result)`` run in the render thread for every result
    on_stale        callables ``f(stale)`` run when a live source goes quiet (True) or gives
                    frames again (False); from the loop's threads, so keep them short
    reconnect       reopen a live source that stops giving frames (backoff 0.5 s .. 8 s)
    source_timeout  seconds without a frame before a live source is stale and reopened
                    (None: never)
    max_frames      stop after this many frames (None: until the source ends or stop())
    """

    def __init__(self, source, segmenter, sinks=(), on_result=(), queue_size=2,
                 reconnect=True, max_frames=None, retry_limit=None, source_timeout=5.0):
        self.source = source
        self.segmenter = segmenter
        self.sinks = list(sinks)
        self.on_result = list(on_result)
        self.on_stale = []
        self.live = bool(getattr(source, "live", False))
        self.in_q = queue.Queue(maxsize=queue_size)
        self.out_q = queue.Queue(maxsize=queue_size)
        self.reconnect = reconnect
        self.retry_limit = retry_limit
        self.source_timeout = source_timeout
        self.max_frames = max_frames
        self.stats = Stats()
        self.stopping = threading.Event()
        self.error = None
        self.failed = []            # (sink, error) of sinks that failed and were closed
        self._threads = []
        self._gen = 0               # capture thread generation: a hung one is left behind
        self._next_id = 0
        self._reading_since = None
        self._restarted = 0.0

    def stop(self):
        self.stopping.set()

    # ---- threads ---------------------------------------------------------------------
    def _capture(self, gen, reopen_first=False):
        backoff = 0.5
        failures = 0
        mine = lambda: gen == self._gen
        try:
            if reopen_first and not self._reopen(0.0):
                failures = 1
            while not self.stopping.is_set() and mine():
                t0 = time.time()
                self._reading_since = t0
                item = self.source.read()
                if not mine():
                    return                  # left behind while hung: a newer thread reads
                self._reading_since = None
                if item is None:
                    if not (self.live and self.reconnect):
                        break
                    failures += 1
                    if self.retry_limit is not None and failures > self.retry_limit:
                        log.warning("%s: gave up after %d tries", self.source.uri, failures - 1)
                        break
                    if not self._reopen(backoff):
                        break
                    backoff = min(8.0, backoff * 2)
                    continue
                backoff, failures = 0.5, 0
                name, frame = item
                now = time.time()
                self.stats.add("capture", 1000.0 * (now - t0))
                self.stats.last_frame_at = now
                if self.stats.stale:
                    self._set_stale(False)
                # resized and normalised here, off the inference thread's critical path
                packet = (self._next_id, name, self.segmenter.prepare(frame), now)
                self._next_id += 1
                if self.live:
                    if _put_latest(self.in_q, packet):
                        self.stats.dropped += 1
                else:
                    while not self.stopping.is_set():
                        try:
                            self.in_q.put(packet, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                if self.max_frames is not None and self._next_id >= self.max_frames:
                    break
        except BaseException as e:      # hand it to the caller's thread
            if mine():
                self.error = e
        finally:
            if mine():
                self._put_end(self.in_q)

    def _reopen(self, wait):
        """Reopen the source after ``wait`` seconds; False when stopping."""
        if wait:
            log.warning("%s: no frames; reopening in %.1fs", self.source.uri, wait)
        if self.stopping.wait(wait):
            return False
        try:
            self.source.reopen()
            self.stats.reconnects += 1
            log.warning("%s: reopened", self.source.uri)
        except JetsegError as e:
            log.warning("%s", e)
        return True

    def _set_stale(self, stale):
        self.stats.stale = stale
        if stale:
            log.warning("%s: no frame for %.1f s: results are stale; reopening it",
                        self.source.uri, self.stats.stale_s)
        else:
            log.warning("%s: frames again", self.source.uri)
        for f in self.on_stale:
            try:
                f(stale)
            except Exception as e:
                log.warning("on_stale hook failed: %s", e)

    def _watch(self):
        """A live source quiet for source_timeout: stale; a read() hung that long: leave its
        thread behind and read from a freshly opened source in a new one."""
        if not (self.live and self.source_timeout) or self.stopping.is_set():
            return
        now = time.time()
        if not self.stats.stale and self.stats.stale_s >= self.source_timeout:
            self._set_stale(True)
        since = self._reading_since
        if since is not None and now - since >= self.source_timeout and \
                now - self._restarted >= self.source_timeout and self.reconnect:
            log.warning("%s: read() hung for %.1f s; reopening", self.source.uri, now - since)
            self._restarted = now
            self._gen += 1
            self._reading_since = None
            getattr(self.source, "abandon", lambda: None)()
            cap = threading.Thread(target=self._capture, args=(self._gen, True),
                                   name="jetseg-capture")
            cap.daemon = True
            cap.start()
            self._threads[0] = cap

    def _put_end(self, q):
        while True:
            try:
                q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.stopping.is_set():
                    _put_latest(q, _END)
                    return

    def _write_sinks(self, res):
        for sink in list(self.sinks):
            try:
                sink.write(res)
            except Exception as e:
                self._sink_failed(sink, e)

    def _sink_failed(self, sink, e):
        """Close a failed sink (what it wrote stays); raise when no sink is left."""
        self.sinks.remove(sink)
        self.failed.append((sink, e))
        try:
            sink.close()
        except Exception as e2:
            log.debug("closing %s after its error: %s", sink, e2)
        if not self.sinks:
            raise e
        log.error("%s; the other outputs go on", e)
        self.error = self.error or e

    def _render(self):
        try:
            while True:
                res = self.out_q.get()
                if res is _END:
                    break
                t0 = time.time()
                self._write_sinks(res)
                now = time.time()
                self.stats.add("render", 1000.0 * (now - t0))
                res.latency_ms = 1000.0 * (now - res.captured_at)
                self.stats.add("latency", res.latency_ms)
                self.stats.frames += 1
                for f in self.on_result:
                    f(res)
        except BaseException as e:
            self.error = self.error or e
            self.stopping.set()
            while self.out_q.get() is not _END:       # let inference finish its puts
                pass

    # ---- the loop --------------------------------------------------------------------
    def run(self):
        """Run until the source ends, ``max_frames`` or ``stop()``; returns the Stats."""
        cap = threading.Thread(target=self._capture, args=(0,), name="jetseg-capture")
        ren = threading.Thread(target=self._render, name="jetseg-render")
        cap.daemon = ren.daemon = True
        cap.start()
        ren.start()
        self._threads = [cap, ren]
        finished = False
        try:
            while True:
                self._watch()
                try:
                    packet = self.in_q.get(timeout=0.1)
                except queue.Empty:
                    if self.stopping.is_set() and not self._threads[0].is_alive():
                        break
                    continue
                if packet is _END:
                    finished = True
                    break
                frame_id, name, prepared, captured = packet
                res = self.segmenter.process(prepared=prepared)
                res.frame_id, res.name, res.captured_at = frame_id, name, captured
                res.timestamp = captured
                self.stats.add("preprocess", res.timings.get("preprocess_ms", 0.0))
                self.stats.add("inference", res.timings.get("inference_ms", 0.0))
                if self.live:
                    if _put_latest(self.out_q, res):
                        self.stats.dropped += 1
                else:
                    while True:
                        try:
                            self.out_q.put(res, timeout=0.1)
                            break
                        except queue.Full:
                            if not ren.is_alive():
                                break
                if self.stopping.is_set():
                    break
        finally:
            if not finished:
                self.stopping.set()         # stop() or an error: the capture thread ends too
            self._put_end(self.out_q)
            ren.join()
            self._threads[0].join(timeout=5.0)
            self.stats.end = time.time()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as e:       # closing one sink must not lose the others
                    self.failed.append((sink, e))
                    self.error = self.error or e
            self.source.close()
        if self.error is not None:
            raise self.error
        return self.stats
