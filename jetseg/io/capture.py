"""Frames from OpenCV's VideoCapture: video files, V4L2 cameras, GStreamer pipelines (CSI
cameras, RTP) and network streams; the Source interface every input has (jetseg.io.sources
picks one by URI) and jetson-inference's flip methods.

A video file with damaged bytes is read past the damage: the frames that cannot be decoded
are skipped, a warning line says which, and ``incomplete()`` sums them up at the end.
"""
import logging
import os
import re

from jetseg.errors import JetsegError, log, need_cv2

JUMP_S = 1.0        # a gap in a file's timestamps this much longer than a frame: lost frames
COUNTED = (".mp4", ".m4v", ".mov", ".avi")     # their index counts the frames (not estimated)

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
    raise JetsegError("unknown --input-flip {!r}".format(flip),
                      fix="use one of " + ", ".join(FLIPS))


def _opencv_log_level(cv2, level):
    """Set OpenCV's own log level (its "[ERROR:0] ... CAP_IMAGES" lines when a backend it
    tries in turn fails) where this build can; the level before, or None."""
    if level is None or not (hasattr(cv2, "getLogLevel") and hasattr(cv2, "setLogLevel")):
        return None
    old = cv2.getLogLevel()
    cv2.setLogLevel(level)
    return old


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

    def incomplete(self):
        """A JetsegError saying what of the input was skipped as unreadable, or None."""
        return None

    def __iter__(self):
        while True:
            item = self.read()
            if item is None:
                return
            yield item


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
        self.total = self.pos = 0   # frames the file announces; read or lost this pass
        self.t_last = None          # timestamp (s) of the frame read last
        self.lost = 0               # frames that could not be decoded, every pass
        self.stem = os.path.splitext(os.path.basename(uri.rstrip("/")))[0] or "frame"
        self._open()

    def _open(self):
        cv2 = need_cv2("video capture")
        quiet = not log.isEnabledFor(logging.DEBUG)     # jetseg says what their errors mean
        if quiet:
            os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")   # read at OpenCV's first use
        level = _opencv_log_level(cv2, 0 if quiet else None)    # 0: silent while it opens
        try:
            if self.api is not None:
                cap = cv2.VideoCapture(self.target, self.api)
            else:
                cap = cv2.VideoCapture(self.target)
        finally:
            _opencv_log_level(cv2, level)
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
        self.total = 0 if self.live else max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.pos, self.t_last = 0, None
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
            if ok and frame is not None and not self.live:
                self._skip(self._frame_number(self.pos, jumps_only=True))
            elif not self.live:
                ok, frame = self._resync()
            if ok and frame is not None:
                name = "{}_{:05d}".format(self.stem, self.index)
                self.index += 1
                self.pos += 1
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

    # ---- damaged files: read past the damage, count what was lost ----------------------
    def _resync(self):
        """After a failed read of a file: (True, the next frame that decodes past damaged
        bytes) or (False, None) at its end. Read on as many times as the file announces
        frames left (a decoder error costs a read); some demuxers stop at damage: then seek
        further and further past it."""
        cap, left = self.cap, self.total - self.pos
        if left <= 0:
            return False, None          # the end the file announces (or it announces none)
        for tries in range(1, left + 1):
            ok, frame = cap.read()
            if ok and frame is not None:
                self._skip(self._frame_number(self.pos + tries))
                return True, frame
        cv2 = need_cv2("video capture")
        step = 1
        while self.pos + step < self.total:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.pos + step)
            ok, frame = cap.read()
            if ok and frame is not None:
                at = self._frame_number(int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1)
                if at >= self.pos:      # (a seek that landed before the damage: further)
                    self._skip(at)
                    return True, frame
            step *= 2
        if self.uri.lower().endswith(COUNTED):
            self._skip(self.total, "nothing more could be read")
        else:                           # the count was estimated from the duration
            log.warning("%s: ends after frame %d though it announces about %d (cut short, or "
                        "a variable frame rate)", self.uri, self.pos, self.total)
        return False, None

    def _frame_number(self, guess, jumps_only=False):
        """The file's number of the frame just read: from its timestamp (a damaged stream
        also loses, without a failed read, the frames that referred to lost ones), else
        ``guess``. ``jumps_only``: ``guess`` unless the timestamp jumped more than JUMP_S past
        the last frame's (a demuxer that stepped over damage; a variable frame rate moves less)."""
        cv2 = need_cv2("video capture")
        t = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        last, self.t_last = self.t_last, t
        if not (t > 0 and self.fps) or jumps_only and (
                last is None or t - last <= JUMP_S + 1.0 / self.fps):
            return guess
        return max(guess, int(round(t * self.fps)))

    def _skip(self, at, what="skipped, going on"):
        """The frame read is the file's frame ``at``: those from ``pos`` up to it are lost."""
        lost = max(0, at - self.pos)
        if lost:
            span = "frame {}".format(self.pos) if lost == 1 else "frames {} to {}".format(
                self.pos, self.pos + lost - 1)
            log.warning("%s: %s could not be decoded (damaged?); %s", self.uri, span, what)
        self.lost += lost
        self.pos += lost
        self.index += lost              # names keep the frame numbers of the file

    def incomplete(self):
        if not self.lost:
            return None
        return JetsegError(
            "{} frame(s) could not be decoded and were skipped (damaged bytes, each span "
            "named above); the others were processed".format(self.lost), path=self.uri,
            fix="use an undamaged copy of the video if there is one")

    def reopen(self):
        self.close()
        self._open()

    def abandon(self):
        self.cap = None

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None
