"""The one loop behind ``jetseg segment``, ``jetseg-camera``, ``jetseg.stream()`` and
``jetseg bench``.

    capture thread --in queue--> inference (caller's thread) --out queue--> render thread
                                                                             -> sinks, callbacks

Queues are bounded. A live source drops the oldest frame when inference falls behind
(latency first); files lose none (every input frame gives an output frame). A live source
that disappears is reopened with backoff. ``stop()`` (Ctrl-C, SIGTERM) ends the loop and
every sink is closed, so a video being written stays playable.
"""
import threading
import time

import numpy as np

from jetseg.errors import JetsegError, log

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

    def percentile(self, q):
        n = min(self.count, len(self.values))
        return float(np.percentile(self.values[:n], q)) if n else float("nan")


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
               "elapsed_s": round(self.elapsed, 3)}
        for s in self.STAGES:
            r = self.stages[s]
            if r.count:
                out[s + "_p50_ms"] = round(r.percentile(50), 2)
                out[s + "_p99_ms"] = round(r.percentile(99), 2)
        return out


def _put_latest(q, item):
    """Put without blocking: when full, drop the oldest item. Returns True if one was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped = True
            except queue.Empty:
                pass


class Pipeline(object):
    """Run ``segmenter`` over ``source`` into ``sinks``; see the module doc.

    sinks        objects with ``write(result)`` and ``close()`` (see jetseg.io.outputs)
    on_result    callables ``f(result)`` run in the render thread for every result
    reconnect    reopen a live source that stops giving frames (backoff 0.5 s .. 8 s)
    max_frames   stop after this many frames (None: until the source ends or stop())
    """

    def __init__(self, source, segmenter, sinks=(), on_result=(), queue_size=2,
                 reconnect=True, max_frames=None, retry_limit=None):
        self.source = source
        self.segmenter = segmenter
        self.sinks = list(sinks)
        self.on_result = list(on_result)
        self.live = bool(getattr(source, "live", False))
        self.in_q = queue.Queue(maxsize=queue_size)
        self.out_q = queue.Queue(maxsize=queue_size)
        self.reconnect = reconnect
        self.retry_limit = retry_limit
        self.max_frames = max_frames
        self.stats = Stats()
        self.stopping = threading.Event()
        self.error = None
        self._threads = []

    def stop(self):
        self.stopping.set()

    # ---- threads ---------------------------------------------------------------------
    def _capture(self):
        frame_id = 0
        backoff = 0.5
        failures = 0
        try:
            while not self.stopping.is_set():
                t0 = time.time()
                item = self.source.read()
                if item is None:
                    if not (self.live and self.reconnect):
                        break
                    failures += 1
                    if self.retry_limit is not None and failures > self.retry_limit:
                        log.warning("%s: gave up after %d tries", self.source.uri, failures - 1)
                        break
                    log.warning("%s: no frames; reopening in %.1fs", self.source.uri, backoff)
                    if self.stopping.wait(backoff):
                        break
                    backoff = min(8.0, backoff * 2)
                    try:
                        self.source.reopen()
                        self.stats.reconnects += 1
                        log.warning("%s: reopened", self.source.uri)
                    except JetsegError as e:
                        log.warning("%s", e)
                    continue
                backoff, failures = 0.5, 0
                name, frame = item
                self.stats.add("capture", 1000.0 * (time.time() - t0))
                packet = (frame_id, name, frame, time.time())
                frame_id += 1
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
                if self.max_frames is not None and frame_id >= self.max_frames:
                    break
        except BaseException as e:      # hand it to the caller's thread
            self.error = e
        finally:
            self._put_end(self.in_q)

    def _put_end(self, q):
        while True:
            try:
                q.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.stopping.is_set():
                    _put_latest(q, _END)
                    return

    def _render(self):
        try:
            while True:
                res = self.out_q.get()
                if res is _END:
                    break
                t0 = time.time()
                for sink in self.sinks:
                    sink.write(res)
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
        cap = threading.Thread(target=self._capture, name="jetseg-capture")
        ren = threading.Thread(target=self._render, name="jetseg-render")
        cap.daemon = ren.daemon = True
        cap.start()
        ren.start()
        self._threads = [cap, ren]
        finished = False
        try:
            while True:
                try:
                    packet = self.in_q.get(timeout=0.1)
                except queue.Empty:
                    if self.stopping.is_set() and not cap.is_alive():
                        break
                    continue
                if packet is _END:
                    finished = True
                    break
                frame_id, name, frame, captured = packet
                res = self.segmenter.process(frame)
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
            cap.join(timeout=5.0)
            self.stats.end = time.time()
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as e:       # closing one sink must not lose the others
                    log.warning("closing %s failed: %s", sink, e)
            self.source.close()
        if self.error is not None:
            raise self.error
        return self.stats
