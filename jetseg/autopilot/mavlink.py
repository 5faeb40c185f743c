"""MAVLink to the flight controller: obstacle distances, horizon and health (ArduPilot, PX4).

    from jetseg.autopilot.mavlink import MavlinkLink
    link = MavlinkLink("udpout:192.168.144.10:14550")    # udpin:0.0.0.0:14550, tcp:HOST:PORT,
    obs = od.measure(res, **link.vehicle.live())          #   /dev/ttyTHS1,921600
    link.send_obstacles(obs, res.captured_at)
    link.send_named({"hz_roll": 2.5})
    link.close()

Who we are, per the MAVLink common message set: HEARTBEAT at 1 Hz with type
MAV_TYPE_ONBOARD_CONTROLLER and autopilot MAV_AUTOPILOT_INVALID (a component, not a flight
controller), component id MAV_COMP_ID_OBSTACLE_AVOIDANCE (196) and by default the vehicle's
system id (1): components of one vehicle share its system id, so ground stations list us
under the vehicle. system_status is ACTIVE while obstacle distances flow, STANDBY otherwise
(PX4 reads a 196 heartbeat's status as the avoidance system's health).

OBSTACLE_DISTANCE (frame MAV_FRAME_BODY_FRD, sensor_type MAV_DISTANCE_SENSOR_UNKNOWN: a
camera estimate is neither laser nor radar; neither autopilot filters on it) carries both
``increment`` and ``increment_f`` (ArduPilot drops a message without either) and
``time_usec`` = the frame's capture time (UNIX us).

Threads: one I/O thread owns the connection (pymavlink packs and parses; the sockets and the
serial port are ours, so a lost link raises instead of printing). Callers only put into a
small queue where a newer OBSTACLE_DISTANCE (or value of a name) replaces one not yet sent
and the oldest message goes when it is full; messages older than ``max_age_s`` (ArduPilot
and PX4 drop obstacle data after 0.5 s) are dropped rather than sent late. A TCP or serial
link that goes away is reopened with backoff (0.5 s doubling to 8 s); a UDP link has nothing
to reopen. What the vehicle sends back (ATTITUDE, DISTANCE_SENSOR facing down,
GLOBAL_POSITION_INT, HEARTBEAT) lands in ``link.vehicle``; a value counts for 1 s, so have
the flight controller stream them at 2 Hz or more (ArduPilot: SRn_EXTRA1, SRn_POSITION,
SRn_EXTRA3 on the companion's port; PX4 streams them on an onboard-mode link).
"""
import collections
import math
import select
import socket
import threading
import time

from jetseg.autopilot.links import Endpoint
from jetseg.errors import JetsegError, log

_SHORT = {"DISTANCE_SENSOR": "rangefinder", "GLOBAL_POSITION_INT.relative_alt": "rel_alt",
          "configured": "config", "configured (level)": "level"}


def dialect():
    """pymavlink's MAVLink 2 ardupilotmega dialect (common + ArduPilot's messages)."""
    try:
        from pymavlink.dialects.v20 import ardupilotmega
    except ImportError as e:
        raise JetsegError("MAVLink needs pymavlink ({})".format(e),
                          fix="pip install 'jetseg[mavlink]' (Python 3.6 / JetPack 4.6: "
                              "pip3 install 'pymavlink>=2.4.47,<2.4.50' pyserial)")
    return ardupilotmega


class VehicleState(object):
    """What the flight controller reports, for live camera geometry (``live()``).

    Only messages from ``sysid`` count. Values older than ``max_age_s`` are not used; a
    height below ``min_height_m`` (on the ground, below home) falls back to the configured
    one. The down-facing rangefinder reads along the body axis: it is tilted by the
    attitude, so height = distance * cos(roll) * cos(pitch).
    """

    def __init__(self, sysid, max_age_s=1.0, min_height_m=0.3):
        self.sysid, self.max_age_s, self.min_height_m = sysid, max_age_s, min_height_m
        self.attitude = self.rangefinder = self.relative_alt = None     # (value..., time)
        self.heartbeat = None               # (autopilot, type, time) of the flight controller

    def update(self, msg, now, mav):
        kind = msg.get_type()
        if kind == "ATTITUDE":
            self.attitude = (math.degrees(msg.roll), math.degrees(msg.pitch), now)
        elif kind == "DISTANCE_SENSOR" and msg.orientation == mav.MAV_SENSOR_ROTATION_PITCH_270:
            if msg.min_distance <= msg.current_distance < msg.max_distance:
                self.rangefinder = (msg.current_distance / 100.0, now)
        elif kind == "GLOBAL_POSITION_INT":
            self.relative_alt = (msg.relative_alt / 1000.0, now)
        elif kind == "HEARTBEAT" and msg.autopilot != mav.MAV_AUTOPILOT_INVALID:
            if self.heartbeat is None:
                log.info("mavlink: vehicle %d heard (autopilot %d, type %d)", self.sysid,
                         msg.autopilot, msg.type)
            self.heartbeat = (msg.autopilot, msg.type, now)

    def _fresh(self, item, now):
        return item is not None and now - item[-1] <= self.max_age_s

    def live(self, now=None):
        """Keyword arguments for ``ObstacleDistances.measure``: what is fresh, with sources."""
        now = time.monotonic() if now is None else now
        out = {}
        att = self.attitude
        if self._fresh(att, now):
            out.update(roll_deg=att[0], pitch_deg=att[1], attitude_source="ATTITUDE")
        rf, alt = self.rangefinder, self.relative_alt
        if self._fresh(rf, now):
            tilt = math.cos(math.radians(att[0])) * math.cos(math.radians(att[1])) \
                if "roll_deg" in out else 1.0
            if rf[0] * tilt >= self.min_height_m:
                out.update(height_m=rf[0] * tilt, height_source="DISTANCE_SENSOR")
        if "height_m" not in out and self._fresh(alt, now) and alt[0] >= self.min_height_m:
            out.update(height_m=alt[0], height_source="GLOBAL_POSITION_INT.relative_alt")
        return out


class MavlinkLink(object):
    """A MAVLink connection that never holds up its caller; see the module doc."""

    def __init__(self, connection, sysid=1, compid=None, heartbeat_hz=1.0, max_age_s=0.5,
                 queue_size=16, vehicle_sysid=None):
        self.mav = dialect()
        self.connection = str(connection)
        self.endpoint = Endpoint(connection)                  # JetsegError when malformed
        for v, what in ((sysid, "system id"), (compid, "component id")):
            if v is not None and not (isinstance(v, int) and 1 <= v <= 255):
                raise JetsegError("MAVLink {} {!r} is outside 1..255".format(what, v),
                                  fix="give 1..255 (system id: the vehicle's, usually 1)")
        self.sysid = sysid
        self.compid = compid or self.mav.MAV_COMP_ID_OBSTACLE_AVOIDANCE
        self.io = self.endpoint.open(first=True)              # JetsegError when it fails
        self.packer = self.mav.MAVLink(None, srcSystem=self.sysid, srcComponent=self.compid)
        self.packer.robust_parsing = True
        self.vehicle = VehicleState(vehicle_sysid or self.sysid)
        self.max_age_s, self.heartbeat_s = max_age_s, 1.0 / heartbeat_hz
        self.sent = self.dropped = self.reconnects = 0
        self.last_obstacles = None
        self._t0 = time.monotonic()
        self._out = collections.OrderedDict()              # key -> (time, message)
        self._out_lock = threading.Lock()
        self._queue_size = queue_size
        self._n = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="jetseg-mavlink")
        self._thread.daemon = True
        self._thread.start()

    # ---- the link --------------------------------------------------------------------
    def _lost(self, err):
        if self.io is not None:
            log.warning("mavlink %s: link lost (%s); reconnecting with backoff",
                        self.connection, getattr(err, "strerror", None) or err)
            try:
                self.io.close()
            except OSError:
                pass
        self.io = None

    def _run(self):
        backoff, retry_at, next_beat = 0.5, 0.0, 0.0
        down_since = None
        while not self._stop:
            now = time.monotonic()
            if self.io is None and now >= retry_at:
                down_since = down_since or now
                try:
                    self.io = self.endpoint.open()
                    self.reconnects += 1
                    log.warning("mavlink %s: link back after %.1f s", self.connection,
                                now - down_since)
                    backoff, down_since = 0.5, None
                except OSError:
                    retry_at, backoff = now + backoff, min(8.0, backoff * 2)
            if now >= next_beat:
                next_beat = now + self.heartbeat_s
                self._send_now(self._heartbeat(now), now)
            wait = max(0.0, min(next_beat, retry_at if self.io is None else next_beat) - now)
            fds = [self._wake_r] + ([self.io] if self.io is not None else [])
            try:
                ready = select.select(fds, [], [], wait)[0]
            except (OSError, ValueError) as e:      # the port vanished under select
                self._lost(e)
                continue
            if self._wake_r in ready:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            if self.io is not None and self.io in ready:
                self._receive()
            while True:
                with self._out_lock:
                    if not self._out:
                        break
                    t, msg = self._out.popitem(last=False)[1]
                self._send_now(msg, t)

    def _receive(self):
        try:
            data = self.io.read()
        except OSError as e:
            self._lost(e)
            return
        now = time.monotonic()
        for msg in self.packer.parse_buffer(data) or ():
            if msg.get_type() != "BAD_DATA" and msg.get_srcSystem() == self.vehicle.sysid \
                    and msg.get_srcComponent() != self.compid:
                self.vehicle.update(msg, now, self.mav)

    def _send_now(self, msg, t):
        if self.io is None or time.monotonic() - t > self.max_age_s:
            self.dropped += 1
            return
        try:
            ok = self.io.write(msg.pack(self.packer))
        except OSError as e:
            self._lost(e)
            ok = False
        if ok:
            self.sent += 1
        else:
            self.dropped += 1

    def _heartbeat(self, now):
        m = self.mav
        busy = self.last_obstacles is not None and now - self.last_obstacles < 1.5
        return m.MAVLink_heartbeat_message(
            m.MAV_TYPE_ONBOARD_CONTROLLER, m.MAV_AUTOPILOT_INVALID, 0, 0,
            m.MAV_STATE_ACTIVE if busy else m.MAV_STATE_STANDBY, 3)

    # ---- what callers send -----------------------------------------------------------
    def send(self, msg, key=None):
        """Queue one pymavlink message (built, not packed); never blocks. A queued message
        with the same ``key`` is replaced (the newest OBSTACLE_DISTANCE, the newest value
        of a name); when the queue is full the oldest message is dropped."""
        with self._out_lock:
            self._n += 1
            if key is None or key not in self._out:
                if len(self._out) >= self._queue_size:
                    self._out.popitem(last=False)
                    self.dropped += 1
            else:
                del self._out[key]
                self.dropped += 1
            self._out[self._n if key is None else key] = (time.monotonic(), msg)
        try:
            self._wake_w.send(b"\0")
        except OSError:             # the wake-up buffer is full: the thread is awake anyway
            pass

    def send_obstacles(self, obs, captured_at=None):
        """OBSTACLE_DISTANCE from an ``Obstacles`` (or its ``as_dict()``)."""
        d = obs.as_dict() if hasattr(obs, "as_dict") else obs
        inc = float(d["increment_deg"])
        self.last_obstacles = time.monotonic()
        self.send(self.mav.MAVLink_obstacle_distance_message(
            int((captured_at if captured_at is not None else time.time()) * 1e6),
            self.mav.MAV_DISTANCE_SENSOR_UNKNOWN, [int(x) for x in d["distances_cm"]],
            max(1, min(255, int(round(inc)))), int(d["min_distance_cm"]),
            int(d["max_distance_cm"]), inc, float(d["angle_offset_deg"]),
            self.mav.MAV_FRAME_BODY_FRD), key="OBSTACLE_DISTANCE")

    def send_named(self, values):
        """NAMED_VALUE_FLOAT per {name (<= 10 ASCII chars): value}."""
        ms = int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF
        for name, value in values.items():
            name = name.encode("ascii", "replace")[:10]
            self.send(self.mav.MAVLink_named_value_float_message(ms, name, float(value)),
                      key=b"NAMED_VALUE_FLOAT " + name)

    def send_text(self, text, severity=None):
        """STATUSTEXT (<= 50 chars), INFO unless told."""
        sev = self.mav.MAV_SEVERITY_INFO if severity is None else severity
        self.send(self.mav.MAVLink_statustext_message(sev, text.encode("ascii", "replace")[:50]))

    def close(self):
        """Send what is queued (briefly), stop the thread, close the connection."""
        deadline = time.monotonic() + 1.0
        while self._out and self.io is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        self._thread.join(timeout=3.0)
        for s in (self.io, self._wake_r, self._wake_w):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.io = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MavlinkEmitter(object):
    """``--emit mavlink:CONNECTION``: each signals record as MAVLink.

    OBSTACLE_DISTANCE for every record that has obstacles (one not yet sent when the next
    comes is replaced: the link carries the newest); NAMED_VALUE_FLOAT at most
    ``named_hz`` times a second: hz_roll, hz_pitch (vehicle attitude from the horizon,
    degrees), hz_conf (0..1), obs_near (m, when an obstacle is in range), fps, lat_ms, and
    f_<class> (the share of each class in ``named_classes``); STATUSTEXT whenever the source
    of the height or attitude changes (e.g. "jetseg: height rangefinder, attitude ATTITUDE").
    """

    def __init__(self, connection, sysid=1, compid=None, named_hz=5.0, named_classes=(),
                 **link_options):
        self.link = MavlinkLink(connection, sysid=sysid, compid=compid, **link_options)
        self.vehicle = self.link.vehicle
        self.named_s = 1.0 / named_hz if named_hz else None
        self.named_classes = list(named_classes or ())
        self._next_named = 0.0
        self._sources = None

    @property
    def sent(self):
        return self.link.sent

    @property
    def dropped(self):
        return self.link.dropped

    def parts(self):
        """What the next ``send_record`` reads (jetseg.autopilot.emit.PARTS): obstacles
        every frame; the horizon and class shares only when the named values are due."""
        if self.named_s is not None and time.monotonic() >= self._next_named:
            return ("obstacles", "horizon", "fractions")
        return ("obstacles",)

    def send_record(self, rec, res=None):
        obs = rec.get("obstacles")
        if obs:
            self.link.send_obstacles(obs, getattr(res, "captured_at", None) or rec.get("time"))
            sources = (obs["height_source"], obs["attitude_source"])
            if sources != self._sources:
                self._sources = sources
                self.link.send_text("jetseg: height {}, attitude {}".format(
                    *(_SHORT.get(s, s) for s in sources)))
        now = time.monotonic()
        if self.named_s is None or now < self._next_named:
            return
        self._next_named = now + self.named_s
        values = {}
        hz = rec.get("horizon") or {}
        if hz.get("vehicle_roll_deg") is not None:
            values.update(hz_roll=hz["vehicle_roll_deg"], hz_pitch=hz["vehicle_pitch_deg"])
        if hz:
            values["hz_conf"] = hz.get("confidence") or 0.0
        if obs and obs.get("nearest_m") is not None:
            values["obs_near"] = obs["nearest_m"]
        if rec.get("fps") is not None:
            values["fps"] = rec["fps"]
        values["lat_ms"] = rec.get("latency_ms") or 0.0
        fr = rec.get("fractions") or {}
        for c in self.named_classes:
            if c in fr:
                values["f_" + c] = fr[c]
        self.link.send_named(values)

    def close(self):
        self.link.close()
