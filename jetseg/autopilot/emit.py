"""``--emit``: one JSON object per frame for an autopilot, never stalling the camera loop.

    --emit udp://127.0.0.1:14560      datagrams (non-blocking; an absent receiver is fine)
    --emit jsonl:run.jsonl            one line a frame (written by its own thread)
    --emit mavlink:udpout:HOST:PORT   MAVLink for ArduPilot/PX4 (jetseg.autopilot.mavlink)

Schema (``schema`` names the version; fields are added, never renamed, within a version):

    {"schema": "jetseg.autopilot/1", "time": 1764000000.123 (capture, unix s),
     "frame_id": 17, "latency_ms": 41.2 (capture to emit), "fps": 29.8,
     "width": 480, "height": 360, "model": "camvid.onnx",
     "fractions": {"Sky": 0.21, ...},                       every class, in class order
     "horizon": {"roll_deg", "pitch", "confidence", "reason", "measured", ...} or null,
     "free_space": {"fractions", "sector", "heading_deg", "blocked", ...} or null,
     "gates": ["pull_up", ...],                             actions of the gates that fired
     "obstacles": {"distances_cm": [72 x uint16], "increment_deg", "angle_offset_deg",
                   "min_distance_cm", "max_distance_cm", "nearest_m", "nearest_bearing_deg",
                   "height_m", "height_source", "roll_deg", "pitch_deg", "attitude_source",
                   "reason"} or null}                       see jetseg.autopilot.obstacles

``horizon`` is measured at ``horizon_hz`` (``--horizon-hz``, default 5 on jetseg-camera,
every frame from Python) and predicted by its filter between ("measured": false); it needs
sky classes (``--sky-classes``, default: a class named Sky), ``free_space``
free classes (``--free-classes``, default: a class named Road); either is null without them.
With a camera geometry the horizon also carries ``vehicle_roll_deg``/``vehicle_pitch_deg``
(the attitude that puts the line there); ``obstacles`` needs a camera height or a MAVLink
link that reports one, and free classes.

The render thread only hands results over: a worker thread computes the record and sends
it (live sources: the newest result wins; files: every frame, in order). It reads the net's
own class map (``signal_map``) and computes only what its targets read: JSON gets every
part every frame; MAVLink alone gets obstacles every frame and the horizon and class shares
when its rate-limited NAMED_VALUE_FLOATs are due. What that costs the camera loop:
``python3 -m tests.helpers.emit_cost`` (paired runs, figures printed).
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
from jetseg.autopilot.links import resolve
from jetseg.errors import JetsegError, log
from jetseg.io.worker import put_latest, put_waiting

SCHEMA = "jetseg.autopilot/1"
PARTS = ("fractions", "horizon", "free_space", "obstacles")     # what a record can hold


def _default(names, wanted):
    lower = dict((n.lower(), n) for n in names)
    return [lower[w] for w in wanted if w in lower]


class Signals(object):
    """Turns a Segmentation into the JSON-ready record of the schema above."""

    def __init__(self, names, sky_classes=None, free_classes=None, sectors=9,
                 hfov_deg=RPI_V2_HFOV_DEG, gates=None, model="", frame_rate=None, camera=None,
                 obstacles=None, horizon_hz=None):
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
        self.camera = camera            # a CameraGeometry: horizon -> vehicle attitude
        self.obstacles = obstacles      # an ObstacleDistances
        # the horizon measured at most this often (None/0: every frame); frames between
        # carry the filter's line carried forward on its rates ("measured": false)
        self.horizon_s = 1.0 / float(horizon_hz) if horizon_hz else 0.0
        self._measured_t = self._last_horizon = None

    def _horizon(self, classes, size, res):
        """The record's horizon: measured and filtered when due (``horizon_hz``), else the
        filtered line predicted to this frame's time."""
        t = res.frame_id / self.frame_rate if self.frame_rate and res.frame_id is not None \
            else res.captured_at
        last = self._measured_t
        due = not self.horizon_s or last is None or t is None or t < last or \
            t - last >= 0.9 * self.horizon_s           # 0.9: a camera's frame-time jitter
        hf = None if due else self.filter.predict(t, *size)
        if hf is None and not due:                     # no line yet: the last measurement's
            return dict(self._last_horizon, measured=False)
        if hf is None:
            h = estimate_horizon(classes, self.sky, names=self.names).scaled(*size)
            hf = self.filter.update(h, t=t)
            self._measured_t = t
        out = hf.as_dict()
        att = self.camera.attitude_from_horizon(hf) if self.camera else None
        out["vehicle_roll_deg"], out["vehicle_pitch_deg"] = \
            (round(att[0], 2), round(att[1], 2)) if att else (None, None)
        out["measured"] = due
        if due:
            self._last_horizon = out
        return out

    def record(self, res, fps=None, vehicle=None, parts=PARTS):
        """The record of one Segmentation; ``vehicle`` (a MavlinkLink's) gives live geometry.
        ``parts`` (of PARTS) are computed, the others are None: a MAVLink-only sink needs
        the class shares and the horizon only when its rate-limited values are due."""
        classes, size = signal_map(res)
        fr = res.class_fractions() if "fractions" in parts else None
        horizon = space = obstacles = None
        if self.sky and "horizon" in parts:
            horizon = self._horizon(classes, size, res)
        if self.free and "free_space" in parts:
            space = free_space(classes, self.free, sectors=self.sectors, names=self.names,
                               hfov_deg=self.hfov).as_dict()
        if self.obstacles and "obstacles" in parts:
            obstacles = self.obstacles.measure(classes, self.names, frame_size=size,
                                               **(vehicle.live() if vehicle else {})).as_dict()
        return {
            "schema": SCHEMA, "time": round(res.captured_at or time.time(), 4),
            "frame_id": res.frame_id, "latency_ms": round(res.latency_ms or 0.0, 2),
            "fps": round(fps, 2) if fps is not None else None,
            "width": int(res.width), "height": int(res.height), "model": self.model,
            "fractions": None if fr is None else dict((k, round(v, 4)) for k, v in fr.items()),
            "horizon": horizon, "free_space": space,
            "gates": None if fr is None else check_gates(fr, self.gates) if self.gates else [],
            "obstacles": obstacles,
        }


def signal_map(res):
    """(class map, (frame width, height)) the signals read: the net's own map
    (``classes_lowres``) when the frame's would only be its nearest-neighbour enlargement
    (the same information in fewer pixels, and no enlargement to make); the frame's when
    it is more (scores upsampled before the argmax: filter mode "smooth")."""
    size = (int(res.width), int(res.height))
    smooth = getattr(getattr(res, "segmenter", None), "filter_mode", None) == "smooth"
    if not hasattr(res, "classes_lowres") or (smooth and getattr(res, "scores", None) is not None):
        return res.classes, size
    return res.classes_lowres, size


class UdpEmitter(object):
    """Non-blocking datagrams: a full buffer or an absent receiver drops, never waits. The
    host is resolved once, here (a bad name or port is a JetsegError now, not per frame)."""

    def __init__(self, host, port):
        port = int(port)
        if not 0 < port < 65536:
            raise JetsegError("UDP port {} is outside 1..65535".format(port),
                              fix="write e.g. --emit udp://127.0.0.1:14560")
        family, self.addr = resolve(host, port, what="the --emit host")
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = self.dropped = 0

    def send(self, line):
        try:
            self.sock.sendto(line, self.addr)
            self.sent += 1
        except OSError:                       # EAGAIN, ECONNREFUSED, no route: drop it
            self.dropped += 1

    def close(self):
        self.sock.close()


class JsonlEmitter(object):
    """Lines appended by a writer thread through a bounded queue (a line that finds it full
    is dropped: the disk is slower than the camera), gathered for ``FLUSH_S`` and written
    together, so a crash loses at most that much. A line is written whole or not at all:
    after a failed write (a full disk) the file is cut back to its last whole line, the
    failure is logged once and later lines are dropped; ``close`` never waits on a queue
    nobody reads."""

    def __init__(self, path):
        fix = "choose a file in a folder you can write, e.g. --emit jsonl:run.jsonl"
        if os.path.isdir(path):
            raise JetsegError("the emit file is a folder", path=path, fix=fix)
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise JetsegError("the emit file's folder does not exist", path=path, fix=fix)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self.good = os.fstat(self.fd).st_size     # end of the last whole line
        except OSError as e:
            raise JetsegError("cannot write the emit file ({})".format(e.strerror or e),
                              path=path, fix=fix)
        self.path = path
        self.error = None
        self.q = queue.Queue(maxsize=256)
        self.sent = self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="jetseg-emit-jsonl")
        self.thread.daemon = True
        self.thread.start()

    FLUSH_S = 0.1      # lines gather this long: one write and one wake-up, not one a frame

    def _run(self):
        while True:
            lines = [self.q.get()]
            if lines[0] is not None:
                time.sleep(self.FLUSH_S)
                try:
                    while lines[-1] is not None:
                        lines.append(self.q.get_nowait())
                except queue.Empty:
                    pass
            end = lines[-1] is None
            lines = [x for x in lines if x is not None]
            if lines and self.error is None:
                self._write(lines)
            else:
                self.dropped += len(lines)
            if end:
                return

    def _write(self, lines):
        data = b"".join(lines)
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except OSError as e:
            whole = n = 0                 # the lines that made it whole before the failure
            while n < len(lines) and whole + len(lines[n]) <= done:
                whole += len(lines[n])
                n += 1
            self.good += whole
            self.sent += n
            self.dropped += len(lines) - n
            self.error = e
            log.error("emit: writing %s failed (%s); its records are dropped from now on",
                      self.path, e.strerror or e)
            try:
                os.ftruncate(self.fd, self.good)      # no half line (a device has no size)
            except OSError:
                pass
            return
        self.good += len(data)
        self.sent += len(lines)

    def send(self, line):
        if self.error is not None:
            self.dropped += 1
            return
        try:
            self.q.put_nowait(line)             # counted as sent once written
        except queue.Full:
            self.dropped += 1

    def close(self, timeout=10.0):
        end = time.time() + timeout
        while self.thread.is_alive() and time.time() < end:
            try:
                self.q.put(None, timeout=0.1)
                break
            except queue.Full:
                pass
        self.thread.join(timeout=max(0.0, end - time.time()))
        if self.thread.is_alive():
            log.error("emit: %s: the writer is stuck; closing without it", self.path)
        try:
            os.close(self.fd)
        except OSError:
            pass


def open_emitter(uri, **mavlink_options):
    """An emitter for ``uri`` (udp://, jsonl:, mavlink:); JetsegError for anything wrong."""
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
    if uri.startswith("mavlink:"):
        from jetseg.autopilot.mavlink import MavlinkEmitter
        return MavlinkEmitter(uri[len("mavlink:"):], **mavlink_options)
    raise JetsegError("--emit {!r} is not understood".format(uri),
                      fix="use udp://HOST:PORT, jsonl:FILE or mavlink:CONNECTION")


_END = object()


class EmitSink(object):
    """A pipeline sink: signals of every result, sent to every emitter by a worker thread.

    ``write`` only hands the result over (live: the newest result replaces one not yet
    taken; files: a bounded queue, every frame in order), so the camera loop never waits for
    the signals or a receiver. A MAVLink emitter's vehicle state feeds the geometry live.
    """

    def __init__(self, uris, signals, stats=None, live=True, **mavlink_options):
        self.signals, self.stats, self.live = signals, stats, bool(live)
        self.emitters = []
        try:
            for u in uris:
                self.emitters.append(open_emitter(u, **mavlink_options))
        except BaseException:
            for e in self.emitters:
                e.close()
            raise
        self.vehicle = next((e.vehicle for e in self.emitters
                             if getattr(e, "vehicle", None) is not None), None)
        self.skipped = 0
        self.failure = None
        self.q = queue.Queue(maxsize=1 if self.live else 8)
        self.thread = threading.Thread(target=self._run, name="jetseg-signals")
        self.thread.daemon = True
        self.thread.start()

    def write(self, res):
        if self.live:
            if put_latest(self.q, res):
                self.skipped += 1
            return
        put_waiting(self.q, res, self.thread)

    def _run(self):
        while True:
            res = self.q.get()
            if res is _END:
                return
            try:
                self.emit(res)
            except Exception as e:                # one bad frame must not end the signals
                if self.failure is None:
                    log.error("emit: frame %s: %s", getattr(res, "frame_id", "?"), e)
                self.failure = e

    def emit(self, res):
        """Compute one result's record and send it to every emitter (the worker's job):
        what JSON needs every frame, what MAVLink needs now (``parts()``)."""
        parts = set()
        for e in self.emitters:
            parts.update(e.parts() if hasattr(e, "parts") else PARTS)
        rec = self.signals.record(res, fps=self.stats.fps if self.stats else None,
                                  vehicle=self.vehicle, parts=parts)
        line = None
        for e in self.emitters:
            if hasattr(e, "send_record"):
                e.send_record(rec, res)
                continue
            if line is None:
                line = (json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8")
            e.send(line)

    def on_stale(self, stale):
        """The pipeline's stale hook (``Pipeline.on_stale``): the source gave no frame for
        ``--source-timeout`` (True) or frames are back (False). JSON receivers get a record
        that says so; MAVLink says it in a STATUSTEXT, and its OBSTACLE_DISTANCE stops, so
        the autopilot's own 0.5 s timeout drops the old distances."""
        rec = {"schema": SCHEMA, "time": round(time.time(), 4), "stale": bool(stale),
               "stale_s": round(getattr(self.stats, "stale_s", 0.0) or 0.0, 2)}
        line = (json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8")
        for e in self.emitters:
            if hasattr(e, "link"):
                e.link.send_text("jetseg: camera stale, no distances" if stale else
                                 "jetseg: camera back")
            else:
                e.send(line)

    def close(self):
        while self.thread.is_alive():
            try:
                self.q.put(_END, timeout=0.1)
                break
            except queue.Full:
                pass
        self.thread.join(timeout=10.0)
        if self.skipped:
            log.info("emit: %d frames had no record (the signals were busy; on a live source "
                     "the newest frame wins)", self.skipped)
        for e in self.emitters:
            e.close()
            why = getattr(e, "error", None)
            if e.dropped:
                log.warning("emit: %d of %d sent items dropped (%s)", e.dropped,
                            e.sent + e.dropped, getattr(why, "strerror", None) or
                            "receiver, link or disk too slow")
