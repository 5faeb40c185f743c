"""``--emit``: one JSON object per frame for an autopilot, never stalling the camera loop.

    --emit udp://127.0.0.1:14560      datagrams (non-blocking; an absent receiver is fine)
    --emit jsonl:run.jsonl            one line a frame (written by its own thread)

Schema (``schema`` names the version; fields are added, never renamed, within a version):

    {"schema": "jetseg.autopilot/1", "time": 1764000000.123 (capture, unix s),
     "frame_id": 17, "latency_ms": 41.2 (capture to emit), "fps": 29.8,
     "width": 480, "height": 360, "model": "camvid.onnx",
     "fractions": {"Sky": 0.21, ...},                       every class, in class order
     "horizon": {"roll_deg", "pitch", "confidence", "reason", ...} or null,
     "free_space": {"fractions", "sector", "heading_deg", "blocked", ...} or null,
     "gates": ["pull_up", ...]}                             actions of the gates that fired

``horizon`` needs sky classes (``--sky-classes``, default: a class named Sky), ``free_space``
free classes (``--free-classes``, default: a class named Road); either is null without them.
"""
import json
import os
import queue
import socket
import threading
import time

from jetseg.autopilot.classmap import class_ids
from jetseg.autopilot.freespace import RPI_V2_HFOV_DEG, free_space
from jetseg.autopilot.gates import check_gates, pull_up
from jetseg.autopilot.horizon import HorizonFilter, estimate_horizon
from jetseg.errors import JetsegError, log

SCHEMA = "jetseg.autopilot/1"


def _default(names, wanted):
    lower = dict((n.lower(), n) for n in names)
    return [lower[w] for w in wanted if w in lower]


class Signals(object):
    """Turns a Segmentation into the JSON-ready record of the schema above."""

    def __init__(self, names, sky_classes=None, free_classes=None, sectors=9,
                 hfov_deg=RPI_V2_HFOV_DEG, gates=None, model="", frame_rate=None):
        self.names = list(names)
        self.sky = list(sky_classes) if sky_classes else _default(self.names, ["sky"])
        self.free = list(free_classes) if free_classes else _default(self.names, ["road"])
        for spec, what in ((self.sky, "--sky-classes"), (self.free, "--free-classes")):
            class_ids(spec, self.names, what)          # unknown names fail now
        self.sectors, self.hfov = int(sectors), float(hfov_deg)
        self.gates = list(gates) if gates is not None else (
            [pull_up(self.sky)] if self.sky else [])
        self.model = os.path.basename(str(model))
        self.filter = HorizonFilter()
        # files: the video's own clock (frame / fps), not how fast we happen to read them
        self.frame_rate = float(frame_rate) if frame_rate else None

    def record(self, res, fps=None):
        fr = res.class_fractions()
        horizon = space = None
        if self.sky:
            h = estimate_horizon(res.classes, self.sky, names=self.names)
            t = res.frame_id / self.frame_rate if self.frame_rate and res.frame_id is not None \
                else res.captured_at
            horizon = self.filter.update(h, t=t).as_dict()
        if self.free:
            space = free_space(res.classes, self.free, sectors=self.sectors,
                                         names=self.names, hfov_deg=self.hfov).as_dict()
        return {
            "schema": SCHEMA, "time": round(res.captured_at or time.time(), 4),
            "frame_id": res.frame_id, "latency_ms": round(res.latency_ms or 0.0, 2),
            "fps": round(fps, 2) if fps is not None else None,
            "width": int(res.width), "height": int(res.height), "model": self.model,
            "fractions": dict((k, round(v, 4)) for k, v in fr.items()),
            "horizon": horizon, "free_space": space,
            "gates": check_gates(fr, self.gates) if self.gates else [],
        }


class UdpEmitter(object):
    """Non-blocking datagrams: a full buffer or an absent receiver drops, never waits."""

    def __init__(self, host, port):
        self.addr = (host, int(port))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = self.dropped = 0

    def send(self, line):
        try:
            self.sock.sendto(line, self.addr)
            self.sent += 1
        except (socket.error, OSError):      # EAGAIN, ECONNREFUSED, no route: drop it
            self.dropped += 1

    def close(self):
        self.sock.close()


class JsonlEmitter(object):
    """Lines appended by a writer thread through a bounded queue (oldest dropped when the
    disk is slower than the camera); every line is flushed whole."""

    def __init__(self, path):
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d) or not os.access(d, os.W_OK):
            raise JetsegError("cannot write the emit file", path=path,
                              fix="choose a file in a folder you can write")
        self.path = path
        self.file = open(path, "ab")
        self.q = queue.Queue(maxsize=256)
        self.sent = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="jetseg-emit")
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        while True:
            line = self.q.get()
            if line is None:
                break
            self.file.write(line)
            self.file.flush()

    def send(self, line):
        try:
            self.q.put_nowait(line)
            self.sent += 1
        except queue.Full:
            self.dropped += 1

    def close(self):
        self.q.put(None)
        self.thread.join(timeout=10.0)
        self.file.close()


def open_emitter(uri):
    uri = str(uri)
    if uri.startswith("udp://"):
        hostport = uri[len("udp://"):]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise JetsegError("--emit {!r} needs HOST:PORT".format(uri),
                              fix="write e.g. --emit udp://127.0.0.1:14560")
        return UdpEmitter(host.strip("[]"), port)
    if uri.startswith("jsonl:"):
        return JsonlEmitter(uri[len("jsonl:"):])
    raise JetsegError("--emit {!r} is not understood".format(uri),
                      fix="use udp://HOST:PORT or jsonl:FILE")


class EmitSink(object):
    """A pipeline sink: signals of every result, sent to every emitter."""

    def __init__(self, uris, signals, stats=None):
        self.signals = signals
        self.stats = stats
        self.emitters = [open_emitter(u) for u in uris]

    def write(self, res):
        rec = self.signals.record(res, fps=self.stats.fps if self.stats else None)
        line = (json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8")
        for e in self.emitters:
            e.send(line)

    def close(self):
        for e in self.emitters:
            e.close()
            if e.dropped:
                log.warning("emit: %d of %d records dropped (receiver or disk too slow)",
                            e.dropped, e.sent + e.dropped)
