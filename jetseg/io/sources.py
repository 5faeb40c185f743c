"""Frame sources by URI, with jetson-inference's names.

    csi://0              MIPI CSI camera through GStreamer (nvarguscamerasrc), JetPack's OpenCV
    /dev/video0          V4L2 camera (also v4l2:///dev/video0)
    rtsp://host/path     network stream (FFmpeg or GStreamer)
    rtp://@:1234         RTP/H.264 on a UDP port (GStreamer)
    clip.mp4             video file
    img.jpg, dir/, "imgs/*.jpg"   images (a folder, a quoted glob)

Every source has ``read() -> (name, frame)`` or ``None`` at the end, ``live``, ``fps``,
``single`` (one image read once: a plain image file may take the output), ``close()``, and
live sources ``reopen()``. Options follow jetson-inference: ``width``,
``height``, ``rate`` (``--input-width/-height/-rate``), ``flip`` (``--input-flip``) and
``loop`` (``--input-loop``: 0 once, N more times, -1 forever; files only);
``max_megapixels`` (``--max-megapixels``): images over it are refused from their header.

A bad part of a file input does not end the run: an image of a folder or glob that cannot be
read, and frames of a video that cannot be decoded (damaged bytes), are skipped with a
warning line each, the rest is processed, and ``incomplete()`` then returns the JetsegError
that sums it up (the CLI prints it and exits with code 2 at the end).
"""
import glob
import os
import re
import socket

from jetseg.errors import JetsegError, log, need_cv2, option
from jetseg.files import IMAGE_EXTS, is_image_path, is_video_path, read_image
from jetseg.io.capture import (FLIPS, NO_GSTREAMER, CaptureSource, Source,  # noqa: F401
                               flip_frame, gstreamer_available)


def csi_pipeline(sensor, width=None, height=None, rate=None, flip=None):
    """GStreamer pipeline for a CSI camera: NVMM capture, nvvidconv flip, BGR into appsink."""
    width, height, rate = width or 1280, height or 720, rate or 30
    method = FLIPS.index(flip) if flip in FLIPS else 0
    return ("nvarguscamerasrc sensor-id={} ! video/x-raw(memory:NVMM), width=(int){}, "
            "height=(int){}, framerate=(fraction){}/1, format=(string)NV12 ! "
            "nvvidconv flip-method={} ! video/x-raw, format=(string)BGRx ! videoconvert ! "
            "video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
            .format(int(sensor), int(width), int(height), int(rate), method))


def rtp_pipeline(port, codec="h264"):
    dec = {"h264": "rtph264depay ! h264parse ! avdec_h264",
           "h265": "rtph265depay ! h265parse ! avdec_h265"}[codec]
    return ('udpsrc port={} caps="application/x-rtp, media=(string)video, '
            'encoding-name=(string){}" ! {} ! videoconvert ! video/x-raw, format=(string)BGR ! '
            'appsink drop=true max-buffers=1 sync=false'.format(int(port), codec.upper(), dec))


class ImageSource(Source):
    """An image, a folder of images or a quoted glob, read in name order."""

    def __init__(self, uri, paths, loop=0, flip=None, max_megapixels=None):
        self.uri = uri
        self.paths = paths
        self.loop = int(loop or 0)
        self.flip = flip
        self.max_megapixels = max_megapixels
        self.index = 0
        self.passes = 0
        self.read_in_pass = 0
        self.skipped = {}           # path: the JetsegError that made it skipped

    @property
    def count(self):
        return len(self.paths)

    @property
    def single(self):
        """The input named one image file, read once (a folder holding one image is not:
        its output stays a folder)."""
        return self.paths == [self.uri] and self.loop == 0

    def read(self):
        """The next image; one that cannot be read is skipped with a warning (a single
        image raises its error)."""
        while True:
            if self.index >= len(self.paths):
                self.passes += 1
                if self.loop >= 0 and self.passes > self.loop or not self.read_in_pass:
                    return None             # the end, or a pass that read nothing
                self.index, self.read_in_pass = 0, 0
            path = self.paths[self.index]
            self.index += 1
            try:
                frame = read_image(path, self.max_megapixels)
            except JetsegError as e:
                if self.single:
                    raise
                if path not in self.skipped:
                    self.skipped[path] = e
                    log.warning("skipped: %s", e)
                continue
            self.read_in_pass += 1
            return path, flip_frame(frame, self.flip)

    def incomplete(self):
        if not self.skipped:
            return None
        return JetsegError(
            "{} of {} images could not be read and were skipped (each named above); the "
            "others were processed".format(len(self.skipped), len(self.paths)), path=self.uri,
            fix="replace or remove the files named above")


def check_host(uri):
    """A network address whose host name does not resolve: one line now, rather than
    FFmpeg's own error line and a vague one after it."""
    from urllib.parse import urlsplit
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        host = None
    if not host:
        raise JetsegError("no host in this address", path=uri,
                          fix="write it as rtsp://HOST[:PORT]/PATH")
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError) as e:
        raise JetsegError("cannot resolve the host name {!r} ({})".format(
            host, getattr(e, "strerror", None) or e), path=uri,
            fix="check the address; an IP address (rtsp://192.168.1.10:554/stream) needs "
                "no name lookup")


def open_source(uri, width=None, height=None, rate=None, flip=None, loop=0,
                max_megapixels=None):
    """A Source for ``uri`` (see the module doc), or a JetsegError that says why not."""
    uri = str(uri)
    if flip and flip not in FLIPS:
        raise JetsegError("unknown {}".format(option("flip", flip, flag="--input-flip")),
                          fix="use one of " + ", ".join(FLIPS))
    opts = dict(width=width, height=height, rate=rate, flip=flip, loop=loop)
    if uri.startswith("csi://"):
        cv2 = need_cv2("CSI cameras")
        if not gstreamer_available(cv2):
            raise JetsegError("cannot open a CSI camera", path=uri, fix=NO_GSTREAMER)
        sensor = uri[len("csi://"):] or "0"
        if not sensor.isdigit():
            raise JetsegError("CSI camera number {!r} is not a number".format(sensor), path=uri,
                              fix="write csi://0 or csi://1")
        return CaptureSource(uri, csi_pipeline(sensor, width, height, rate, flip),
                             cv2.CAP_GSTREAMER, live=True, cpu_flip=False,
                             **dict(opts, flip=flip))
    if uri.startswith("v4l2://") or re.match(r"^/dev/video\d+$", uri):
        dev = uri[len("v4l2://"):] if uri.startswith("v4l2://") else uri
        cv2 = need_cv2("V4L2 cameras")
        m = re.match(r"^/dev/video(\d+)$", dev)
        target = int(m.group(1)) if m else dev
        if m and not os.path.exists(dev):
            raise JetsegError("no such camera", path=dev,
                              fix="plug the camera in; ls /dev/video* lists the cameras")
        return CaptureSource(uri, target, getattr(cv2, "CAP_V4L2", None), live=True, **opts)
    if uri.startswith("rtp://"):
        cv2 = need_cv2("RTP streams")
        m = re.match(r"^rtp://[^:]*:(\d+)", uri)
        if not m:
            raise JetsegError("RTP address needs a port", path=uri, fix="write rtp://@:1234")
        if not gstreamer_available(cv2):
            raise JetsegError("cannot receive RTP", path=uri, fix=NO_GSTREAMER)
        return CaptureSource(uri, rtp_pipeline(m.group(1)), cv2.CAP_GSTREAMER, live=True,
                             **opts)
    if uri.startswith(("rtsp://", "http://", "https://")):
        check_host(uri)
        return CaptureSource(uri, uri, None, live=True, **opts)
    if os.path.isdir(uri):
        paths = sorted(os.path.join(uri, f) for f in os.listdir(uri) if is_image_path(f))
        if not paths:
            raise JetsegError("folder holds no images ({})".format(", ".join(IMAGE_EXTS)),
                              path=uri, fix="point at a folder of .jpg/.png files")
        return ImageSource(uri, paths, loop, flip, max_megapixels)
    if any(ch in uri for ch in "*?["):
        paths = sorted(p for p in glob.glob(uri) if is_image_path(p))
        if not paths:
            raise JetsegError("pattern matches no images", path=uri,
                              fix="check the pattern, and quote it so the shell leaves it")
        return ImageSource(uri, paths, loop, flip, max_megapixels)
    if not os.path.exists(uri):
        raise JetsegError("no such file", path=uri, fix="check the input path or URI "
                          "(csi://0, /dev/video0, rtsp://..., file, folder)")
    if is_video_path(uri):
        return CaptureSource(uri, uri, None, live=False, **opts)
    if is_image_path(uri):
        return ImageSource(uri, [uri], loop, flip, max_megapixels)
    log.debug("%s: unknown extension, trying it as a video", uri)
    return CaptureSource(uri, uri, None, live=False, **opts)
