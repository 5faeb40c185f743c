"""GStreamer video out for a Jetson: NVIDIA's hardware encoders through JetPack's OpenCV
(``cv2.VideoWriter`` with ``cv2.CAP_GSTREAMER``), and the RTSP server of gst-rtsp-server.

    appsrc ! BGR -> (nvvidconv NVMM I420 ! nvv4l2h264enc | videoconvert I420 ! x264enc)
           ! h264parse ! mp4mux fragment-duration=1000 ! filesink      (a file)
           ! h264parse ! rtph264pay ! udpsink                          (RTP)

Pip's opencv-python has no GStreamer (jetseg.io.sources.gstreamer_available says whether this
OpenCV has it). Elements are looked up once with ``gst-inspect-1.0``. The pipelines are built
as strings here (tested on any machine); running them needs a Jetson.
"""
import os
import subprocess
import time

from jetseg.errors import JetsegError, log

HARDWARE = {"h264": "nvv4l2h264enc", "h265": "nvv4l2h265enc", "mjpeg": "nvjpegenc"}
SOFTWARE = {"h264": "x264enc", "h265": "x265enc", "mjpeg": "jpegenc"}
PARSE = {"h264": "h264parse", "h265": "h265parse", "mjpeg": "jpegparse"}
PAY = {"h264": "rtph264pay config-interval=1 pt=96", "h265": "rtph265pay config-interval=1 pt=96",
       "mjpeg": "rtpjpegpay pt=26"}
# fragmented MP4: what is on disk stays playable if the process dies (a fragment a second)
MUX = {"mp4": "mp4mux fragment-duration=1000", "mov": "qtmux fragment-duration=1000",
       "matroska": "matroskamux", "avi": "avimux"}
NO_RTSP_SERVER = ("rtsp:// output needs gst-rtsp-server with its Python bindings: on a Jetson "
                  "sudo apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                  "gstreamer1.0-rtsp; or send rtp://HOST:5600 (QGroundControl's port) instead")

_exists = {}


def element_exists(name):
    """Whether GStreamer has the element ``name`` (asked once, through gst-inspect-1.0)."""
    if name not in _exists:
        try:
            r = subprocess.run(["gst-inspect-1.0", name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=20)
            _exists[name] = r.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _exists[name] = False
    return _exists[name]


def find_encoder(codec, hardware_only=False):
    """The GStreamer encoder element for ``codec``: NVIDIA's hardware one first, or None."""
    names = [HARDWARE[codec]] + ([] if hardware_only else [SOFTWARE[codec]])
    for name in names:
        if element_exists(name):
            return name
    return None


def _quote(path):
    return '"{}"'.format(str(path).replace("\\", "\\\\").replace('"', '\\"'))


def encoder_chain(element, codec, bitrate_kbps, keyint):
    """From OpenCV's BGR appsrc to encoded ``codec``: NVMM conversion for NVIDIA elements,
    videoconvert for software ones; a keyframe (with SPS/PPS) every ``keyint`` frames."""
    head = "appsrc ! video/x-raw, format=(string)BGR ! videoconvert ! "
    if element.startswith("nv"):
        head += ("video/x-raw, format=(string)BGRx ! nvvidconv ! "
                 "video/x-raw(memory:NVMM), format=(string)I420 ! ")
    else:
        head += "video/x-raw, format=(string)I420 ! "
    kbps, keyint = int(bitrate_kbps), max(1, int(keyint))
    if element in ("nvv4l2h264enc", "nvv4l2h265enc"):
        enc = ("{} bitrate={} iframeinterval={} idrinterval={} insert-sps-pps=true "
               "preset-level=1".format(element, kbps * 1000, keyint, keyint))
    elif element in ("x264enc", "x265enc"):
        enc = "{} tune=zerolatency speed-preset=veryfast key-int-max={} bitrate={}".format(
            element, keyint, kbps)
    else:                                   # nvjpegenc, jpegenc
        enc = "{} quality=85".format(element)
    return head + enc + " ! " + PARSE[codec]


def file_pipeline(path, fmt, codec, element, bitrate_kbps, keyint):
    """Record ``codec`` into ``path`` (``fmt``: mp4, mov, matroska or avi)."""
    return "{} ! {} ! filesink location={} sync=false".format(
        encoder_chain(element, codec, bitrate_kbps, keyint), MUX[fmt], _quote(path))


def rtp_pipeline(host, port, codec, element, bitrate_kbps, keyint, mtu=1400):
    """Send ``codec`` over RTP/UDP to host:port; never waits on the network."""
    return "{} ! {} mtu={} ! udpsink host={} port={} sync=false async=false".format(
        encoder_chain(element, codec, bitrate_kbps, keyint), PAY[codec], int(mtu), host,
        int(port))


class GstWriter(object):
    """``cv2.VideoWriter`` over a GStreamer pipeline; ``path`` (a file) is fsync'ed about
    once a second through a descriptor of its own (OpenCV keeps GStreamer's)."""

    def __init__(self, pipeline, fps, size, path=None, what="GStreamer"):
        from jetseg.errors import need_cv2
        cv2 = need_cv2("GStreamer video out")
        self.pipeline = pipeline
        log.debug("gstreamer: %s", pipeline)
        self.writer = cv2.VideoWriter(pipeline, cv2.CAP_GSTREAMER, 0, float(fps), size, True)
        if not self.writer.isOpened():
            raise JetsegError("GStreamer cannot start this pipeline: {}".format(pipeline),
                              path=what, fix="check it with gst-launch-1.0 (videotestsrc "
                              "instead of appsrc); --output-codec h264 is the safest choice")
        self.fd = None
        self.path = path
        self.synced = time.time()

    def write(self, frame, t=None):
        self.writer.write(frame)
        if self.path and time.time() - self.synced >= 1.0:
            self.sync()

    def sync(self):
        self.synced = time.time()
        if self.fd is None and os.path.exists(self.path):
            self.fd = os.open(self.path, os.O_RDONLY)
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self):
        self.writer.release()               # sends EOS: the muxer finishes the file
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


# ---- rtsp://@:8554/name: gst-rtsp-server relays our RTP from a local UDP port ------------
def rtsp_launch(udp_port, codec):
    """The server's media: the RTP packets we send to 127.0.0.1:udp_port (DeepStream's
    pattern), so any RTP sender (PyAV or GStreamer) feeds it."""
    enc = {"h264": "H264", "h265": "H265", "mjpeg": "JPEG"}[codec]
    pt = 26 if codec == "mjpeg" else 96
    return ('( udpsrc name=pay0 port={} buffer-size=524288 caps="application/x-rtp, '
            'media=video, clock-rate=90000, encoding-name=(string){}, payload={}" )'
            .format(int(udp_port), enc, pt))


class RtspServer(object):
    """gst-rtsp-server on ``host:port`` serving ``/mount``; its GLib loop runs in a thread."""

    def __init__(self, uri, host, port, mount, udp_port, codec):
        try:
            import gi
            gi.require_version("Gst", "1.0")
            gi.require_version("GstRtspServer", "1.0")
            from gi.repository import GLib, Gst, GstRtspServer
        except (ImportError, ValueError) as e:
            raise JetsegError("no RTSP server here ({})".format(e), path=uri, fix=NO_RTSP_SERVER)
        import threading
        Gst.init(None)
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(host)
        self.server.set_service(str(port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(rtsp_launch(udp_port, codec))
        factory.set_shared(True)
        self.server.get_mount_points().add_factory("/" + mount, factory)
        if not self.server.attach(None):
            raise JetsegError("cannot serve RTSP on {}:{}".format(host, port), path=uri,
                              fix="choose a free port, e.g. rtsp://@:8555/" + mount)
        self.loop = GLib.MainLoop()
        self.thread = threading.Thread(target=self.loop.run, name="jetseg-rtsp")
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.loop.quit()
