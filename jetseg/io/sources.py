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
``loop`` (``--input-loop``: 0 once, N more times, -1 forever; files only).
"""
import glob
import os
import re

from jetseg.errors import JetsegError, log, need_cv2
from jetseg.files import IMAGE_EXTS, is_image_path, is_video_path, read_image

# jetson-inference / nvvidconv flip-method numbering
FLIPS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal",
         "upper-right-diagonal", "vertical", "upper-left-diagonal")

NO_GSTREAMER = ("this OpenCV has no GStreamer: on a Jetson use JetPack's python3-opencv "
                "(apt-get install python3-opencv; pip uninstall opencv-python "
                "opencv-python-headless), not pip's opencv-python")


def gstreamer_available(cv2=None):
    cv2 = cv2 or need_cv2("video capture")
    info = cv2.getBuildInformation()
    m = re.search(r"GStreamer:\s*(\S+)", info)
    return bool(m and m.group(1).upper() not in ("NO", "OFF"))


def flip_frame(frame, flip):
    """Apply a jetson-inference flip method on the CPU (CSI cameras do it in nvvidconv)."""
    if not flip or flip == "none":
        return frame
    cv2 = need_cv2("flipping frames")
    if flip == "counterclockwise":
        return cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if flip == "clockwise":
        return cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    if flip == "rotate-180":
        return cv2.rotate(frame, cv2.ROTATE_180)
    if flip == "horizontal":
        return cv2.flip(frame, 1)
    if flip == "vertical":
        return cv2.flip(frame, 0)
    if flip == "upper-left-diagonal":
        return frame.transpose(1, 0, 2).copy()
    if flip == "upper-right-diagonal":
        return cv2.rotate(frame, cv2.ROTATE_180).transpose(1, 0, 2).copy()
    raise JetsegError("unknown --input-flip {!r}".format(flip), fix="use one of " + ", ".join(FLIPS))


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


class Source(object):
    live = False
    fps = None
    uri = ""
    single = False

    def read(self):
        raise NotImplementedError

    def reopen(self):
        raise JetsegError("{} cannot be reopened".format(self.uri), fix="restart")

    def abandon(self):
        """Forget the handle a hung ``read()`` holds (its thread is left behind and frees it
        if it ever returns); the next ``reopen()`` makes a fresh one."""

    def close(self):
        pass

    def __iter__(self):
        while True:
            item = self.read()
            if item is None:
                return
            yield item


class ImageSource(Source):
    """An image, a folder of images or a quoted glob, read in name order."""

    def __init__(self, uri, paths, loop=0, flip=None):
        self.uri = uri
        self.paths = paths
        self.loop = int(loop or 0)
        self.flip = flip
        self.index = 0
        self.passes = 0

    @property
    def count(self):
        return len(self.paths)

    @property
    def single(self):
        """The input named one image file, read once (a folder holding one image is not:
        its output stays a folder)."""
        return self.paths == [self.uri] and self.loop == 0

    def read(self):
        if self.index >= len(self.paths):
            self.passes += 1
            if self.loop >= 0 and self.passes > self.loop:
                return None
            self.index = 0
        path = self.paths[self.index]
        self.index += 1
        return path, flip_frame(read_image(path), self.flip)


class CaptureSource(Source):
    """Anything OpenCV's VideoCapture opens: files, V4L2, GStreamer pipelines, RTSP."""

    def __init__(self, uri, target, api=None, live=False, width=None, height=None, rate=None,
                 flip=None, loop=0, cpu_flip=True):
        self.uri = uri
        self.target = target
        self.api = api
        self.live = live
        self.want = (width, height, rate)
        self.flip = flip if cpu_flip else None
        self.loop = int(loop or 0)
        self.passes = 0
        self.index = 0
        self.cap = None
        self.stem = os.path.splitext(os.path.basename(uri.rstrip("/")))[0] or "frame"
        self._open()

    def _open(self):
        cv2 = need_cv2("video capture")
        if self.api is not None:
            cap = cv2.VideoCapture(self.target, self.api)
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            raise JetsegError("OpenCV cannot open this source", path=self.uri, fix=self._why())
        w, h, r = self.want
        if self.live:
            if w:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(w))
            if h:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(h))
            if r:
                cap.set(cv2.CAP_PROP_FPS, float(r))
            try:
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)     # latency first
            except Exception:
                pass
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else (r or None)
        self.cap = cap

    def _why(self):
        cv2 = need_cv2("video capture")
        if self.api == getattr(cv2, "CAP_GSTREAMER", -1) and not gstreamer_available(cv2):
            return NO_GSTREAMER
        if self.uri.startswith(("/dev/video", "v4l2://")):
            return ("check the camera is plugged in (ls /dev/video*), not used by another "
                    "program, and that you may read it (group 'video')")
        if self.uri.startswith("csi://"):
            return ("check the ribbon cable and 'gst-launch-1.0 nvarguscamerasrc ! fakesink'; "
                    "restart nvargus-daemon if another program held the camera")
        if self.uri.startswith(("rtsp://", "rtp://")):
            return "check the address and that the stream is running"
        return "check that the file plays, or convert it to .mp4 (H.264)"

    def read(self):
        while True:
            cap = self.cap
            ok, frame = cap.read() if cap is not None else (False, None)
            if cap is not self.cap:
                return None             # abandoned while this read hung
            if ok and frame is not None:
                name = "{}_{:05d}".format(self.stem, self.index)
                self.index += 1
                if self.want[0] and self.want[1] and not self.live and (
                        frame.shape[1], frame.shape[0]) != (self.want[0], self.want[1]):
                    cv2 = need_cv2("resizing")
                    frame = cv2.resize(frame, (int(self.want[0]), int(self.want[1])),
                                       interpolation=cv2.INTER_AREA)
                return name, flip_frame(frame, self.flip)
            if self.live:
                return None             # caller decides: reopen with backoff
            if self.index == 0 and self.passes == 0:
                raise JetsegError("video has no readable frames", path=self.uri,
                                  fix="check that the file plays, or re-encode it")
            self.passes += 1
            if self.loop >= 0 and self.passes > self.loop:
                return None
            self.close()
            self._open()

    def reopen(self):
        self.close()
        self._open()

    def abandon(self):
        self.cap = None

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def open_source(uri, width=None, height=None, rate=None, flip=None, loop=0):
    """A Source for ``uri`` (see the module doc), or a JetsegError that says why not."""
    uri = str(uri)
    if flip and flip not in FLIPS:
        raise JetsegError("unknown --input-flip {!r}".format(flip), fix="use one of " +
                          ", ".join(FLIPS))
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
        return CaptureSource(uri, uri, None, live=True, **opts)
    if os.path.isdir(uri):
        paths = sorted(os.path.join(uri, f) for f in os.listdir(uri) if is_image_path(f))
        if not paths:
            raise JetsegError("folder holds no images ({})".format(", ".join(IMAGE_EXTS)),
                              path=uri, fix="point at a folder of .jpg/.png files")
        return ImageSource(uri, paths, loop, flip)
    if any(ch in uri for ch in "*?["):
        paths = sorted(p for p in glob.glob(uri) if is_image_path(p))
        if not paths:
            raise JetsegError("pattern matches no images", path=uri,
                              fix="check the pattern, and quote it so the shell leaves it")
        return ImageSource(uri, paths, loop, flip)
    if not os.path.exists(uri):
        raise JetsegError("no such file", path=uri, fix="check the input path or URI "
                          "(csi://0, /dev/video0, rtsp://..., file, folder)")
    if is_video_path(uri):
        return CaptureSource(uri, uri, None, live=False, **opts)
    if is_image_path(uri):
        return ImageSource(uri, [uri], loop, flip)
    log.debug("%s: unknown extension, trying it as a video", uri)
    return CaptureSource(uri, uri, None, live=False, **opts)
