"""Video to the ground station: ``rtp://HOST:PORT`` (H.264 over RTP/UDP; QGroundControl
listens on 5600) and ``rtsp://@:8554/NAME`` (where gst-rtsp-server is installed: a Jetson).

    jetseg-camera --engine m.onnx csi://0 rtp://192.168.1.20:5600 --headless
        also writes rtp-192.168.1.20-5600.sdp in the current folder for VLC or
        ffplay -protocol_whitelist file,udp,rtp rtp-192.168.1.20-5600.sdp
        (rtp://HOST:PORT?sdp=FILE puts it elsewhere; QGroundControl needs none)

UDP is fire-and-forget: an absent or slow receiver costs nothing. Encoding runs in a thread
of its own behind a queue that drops the oldest frame, so the camera loop never waits.
Packets come from PyAV's RTP muxer (sent by a non-blocking socket here) or, with GStreamer,
from rtph264pay ! udpsink. A keyframe with SPS/PPS every second lets a receiver join late.
"""
import errno
import re
import socket
import time

from jetseg.errors import JetsegError, log
from jetseg.files import write_atomic
from jetseg.io import video
from jetseg.io.worker import Worker

RTCP_TYPES = range(200, 205)        # SR, RR, SDES, BYE, APP: sent to port + 1
ENCODING = {"h264": ("H264", 96), "h265": ("H265", 96), "mjpeg": ("JPEG", 26)}


def parse_rtp(uri):
    """``rtp://HOST:PORT[?sdp=FILE]`` -> (host, port, sdp path)."""
    m = re.match(r"^rtp://(\[[^\]]+\]|[^:/?]+):(\d+)/?(?:\?sdp=(.+))?$", str(uri))
    if not m or not 0 < int(m.group(2)) < 65536:
        raise JetsegError("not an RTP destination", path=uri,
                          fix="write rtp://HOST:PORT, e.g. rtp://192.168.1.20:5600")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    return host, port, m.group(3) or "rtp-{}-{}.sdp".format(host.replace(":", "_"), port)


def resolve(host, port, uri):
    try:
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise JetsegError("cannot resolve host {!r} ({})".format(host, getattr(e, "strerror", e)),
                          path=uri, fix="check the ground station's address, e.g. "
                                        "rtp://192.168.1.20:5600")
    family, _, _, _, addr = info[0]
    return family, addr


def sdp_text(host, port, codec, family=socket.AF_INET):
    """The session description VLC and ffplay need to receive the stream."""
    name, pt = ENCODING[codec]
    ip = "IP6" if family == socket.AF_INET6 else "IP4"
    fmtp = "a=fmtp:{} packetization-mode=1\n".format(pt) if codec == "h264" else ""
    return ("v=0\no=- 0 0 IN {ip} {host}\ns=jetseg\nc=IN {ip} {host}\nt=0 0\n"
            "a=tool:jetseg\nm=video {port} RTP/AVP {pt}\na=rtpmap:{pt} {name}/90000\n{fmtp}"
            .format(ip=ip, host=host, port=port, pt=pt, name=name, fmtp=fmtp))


class UdpPackets(object):
    """What PyAV's RTP muxer writes to, a packet a call: sent without ever blocking; a packet
    the network cannot take now is dropped and counted."""

    def __init__(self, family, addr):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.addr = addr
        self.rtcp = (addr[0], addr[1] + 1) + tuple(addr[2:])
        self.sent = self.dropped = 0

    def write(self, data):
        data = bytes(data)
        to = self.rtcp if len(data) > 1 and data[1] in RTCP_TYPES else self.addr
        try:
            self.sock.sendto(data, to)
            self.sent += 1
        except (IOError, OSError) as e:
            self.dropped += 1
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNREFUSED,
                               errno.ENOBUFS):
                log.debug("rtp: %s", e)
        return len(data)

    def close(self):
        self.sock.close()


class AvRtp(object):
    """PyAV's RTP muxer over UdpPackets."""

    def __init__(self, packets, encoder, codec, size, fps, kbps):
        import av
        opts = {"packetsize": "1200"}
        if codec != "mjpeg":
            opts["payload_type"] = "96"
        self.packets = packets
        self.container = av.open(packets, "w", format="rtp", options=opts, buffer_size=1200)
        self.enc = video.AvEncoder(self.container, encoder, codec, size, fps, kbps)

    def write(self, frame, t):
        self.enc.encode(frame, t)

    def close(self):
        try:
            self.enc.flush()
            self.container.close()
        finally:
            self.packets.close()


class RtpOut(object):
    """Frames to ``rtp://HOST:PORT`` (see the module doc); ``write(name, frame, t)``, where
    ``t`` is the capture time (RTP timestamps follow it)."""

    timed = True

    def __init__(self, uri, fps=None, codec=None, bitrate=None, backend="auto", sdp=True):
        self.uri = str(uri)
        self.host, self.port, sdp_path = parse_rtp(self.uri)
        self.codec = video.check_codec(codec, self.uri)
        self.kbps = video.check_bitrate(bitrate, self.uri) or video.HW_KBPS
        self.fps = float(fps or 30.0)
        self.family, self.addr = resolve(self.host, self.port, self.uri)
        self.backend, self.encoder = video.choose_backend(self.codec, self.uri, network=True,
                                                          backend=backend)
        self.sdp = None
        if sdp:
            try:
                write_atomic(sdp_path, sdp_text(self.host, self.port, self.codec,
                                                self.family).encode("ascii"))
                self.sdp = sdp_path
            except JetsegError as e:
                log.warning("%s: no SDP file: %s", self.uri, e)
        log.info("%s: %s over RTP/UDP with %s%s", self.uri, self.codec.upper(), self.encoder,
                 "; SDP for VLC/ffplay: " + self.sdp if self.sdp else "")
        self.size = None
        self.t0 = None
        self.frames = 0
        self.packets = None
        self.worker = Worker(self._open, self.uri, lossless=False, size=2)

    def _open(self, frame):
        size = (frame.shape[1], frame.shape[0])
        if self.backend == "pyav":
            self.packets = UdpPackets(self.family, self.addr)
            return AvRtp(self.packets, self.encoder, self.codec, size, self.fps, self.kbps)
        from jetseg.io import gst
        pipeline = gst.rtp_pipeline(self.addr[0], self.port, self.codec, self.encoder,
                                    self.kbps, round(self.fps))
        return gst.GstWriter(pipeline, self.fps, size, what=self.uri)

    def write(self, name, frame, t=None):
        t = time.time() if t is None else t
        self.t0 = t if self.t0 is None else self.t0
        if self.size is None:
            self.size = (frame.shape[1], frame.shape[0])
        self.worker.put(video.fit_frame(frame, self.size), t - self.t0)
        self.frames += 1

    def close(self):
        self.worker.close()
        if self.packets is not None and self.packets.dropped:
            log.warning("%s: %d of %d packets not sent (network busy or unreachable)", self.uri,
                        self.packets.dropped, self.packets.sent + self.packets.dropped)
        if self.worker.dropped:
            log.info("%s: %d of %d frames skipped to stay live", self.uri, self.worker.dropped,
                     self.frames)


class RtspOut(object):
    """``rtsp://@:8554/NAME``: gst-rtsp-server (jetseg.io.gst) relays our RTP stream, sent to
    a local UDP port, to every client that connects."""

    timed = True

    def __init__(self, uri, fps=None, codec=None, bitrate=None):
        from jetseg.io import gst
        m = re.match(r"^rtsp://(@|\[[^\]]+\]|[^:/@]*)(?::(\d+))?(?:/([\w.-]+))?/?$", str(uri))
        if not m:
            raise JetsegError("not an RTSP address to serve", path=uri,
                              fix="write rtsp://@:8554/live (@: every interface)")
        host = m.group(1).strip("[]")
        host = "0.0.0.0" if host in ("", "@") else host
        port, mount = int(m.group(2) or 8554), m.group(3) or "live"
        codec = video.check_codec(codec, uri)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        udp_port = s.getsockname()[1]
        s.close()
        self.server = gst.RtspServer(uri, host, port, mount, udp_port, codec)
        try:
            self.rtp = RtpOut("rtp://127.0.0.1:{}".format(udp_port), fps, codec, bitrate,
                              sdp=False)
        except BaseException:
            self.server.close()
            raise
        self.worker = self.rtp.worker
        log.info("serving rtsp://%s:%d/%s", host, port, mount)

    def write(self, name, frame, t=None):
        self.rtp.write(name, frame, t)

    def close(self):
        try:
            self.rtp.close()
        finally:
            self.server.close()


def open_network(uri, fps=None, codec=None, bitrate=None):
    if str(uri).startswith("rtsp://"):
        return RtspOut(uri, fps, codec, bitrate)
    return RtpOut(uri, fps, codec, bitrate)
