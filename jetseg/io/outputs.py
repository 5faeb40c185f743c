"""Where results go: ``display://0``, video files, ``rtp://HOST:PORT``, ``rtsp://@:8554/name``,
image files, folders and ``%d`` patterns (the web view, ``--serve``, is jetseg.io.web; sources
are jetseg.io.sources).

A sink has ``write(result)`` and ``close()``; ``open_sink(uri)`` picks one; file sinks also
say what they wrote (``written()``: "3 images into out/"). File sinks write
through ``open_output``: images are encoded in memory and renamed into place; a video is
recorded at its own path from the first frame on, so that what is there plays after a hard
kill too (jetseg.io.video), and is finished by ``close()``, also after Ctrl-C or SIGTERM.
"""
import os

from jetseg.errors import JetsegError, log, need_cv2
from jetseg.files import check_writable, is_image_path, is_video_path, write_image
from jetseg.io import video
from jetseg.io.worker import Worker


class VideoOut(object):
    """A video file recorded at ``path`` (see jetseg.io.video). Encoding, fsync and the final
    remux run in a thread of their own: a file source waits for it (no frame lost), a live
    one drops its oldest frames rather than fall behind.

    codec    h264 (default), h265 or mjpeg
    bitrate  kbit/s (None: the encoder's quality default; 4000 for hardware encoders)
    live     timestamps from capture times (``t`` in ``write``) instead of frame counts
    backend  auto, pyav, gstreamer or opencv (see jetseg.io.video)
    """

    timed = True                # write(name, frame, t): t is the capture time

    def __init__(self, path, fps=30.0, codec="h264", bitrate=None, live=False, backend="auto"):
        self.path = str(path)
        self.fps = float(fps or 30.0)
        self.fmt = video.container_for(self.path)
        self.codec = video.check_codec(codec, self.path)
        self.kbps = video.check_bitrate(bitrate, self.path)
        if self.codec == "h265" and self.fmt == "avi":
            raise JetsegError("AVI cannot hold H.265", path=self.path,
                              fix="record H.265 into .mp4 or .mkv")
        self.backend, self.encoder = video.choose_backend(self.codec, self.path,
                                                          backend=backend)
        if self.backend == "opencv":
            log.warning("%s: recording with OpenCV's own writer: not %s, and a hard kill loses "
                        "the file (fix: %s)", self.path, self.codec.upper(), video.INSTALL_PYAV)
        video.check_writable(self.path)     # an unwritable folder fails now, not mid-run
        self.live = live
        self.size = None
        self.frames = 0
        self.t0 = None
        self.worker = Worker(self._open, self.path, lossless=not live)
        log.debug("%s: %s with %s (%s)", self.path, self.codec, self.backend, self.encoder)

    def _open(self, frame):
        """The writer, made on the first frame (in the worker's thread)."""
        size = (frame.shape[1], frame.shape[0])
        if self.backend == "pyav":
            return video.AvFile(self.path, self.encoder, self.codec, size, self.fps, self.kbps)
        if self.backend == "gstreamer":
            from jetseg.io import gst
            pipeline = gst.file_pipeline(self.path, self.fmt, self.codec, self.encoder,
                                         self.kbps or video.HW_KBPS, round(self.fps))
            writer = gst.GstWriter(pipeline, self.fps, size, path=self.path, what=self.path)
            video.fsync_dir(self.path)      # filesink made the file: its name is durable too
            return writer
        return video.OpenCvFile(self.path, self.codec, size, self.fps)

    def write(self, name, frame, t=None):
        if self.size is None:
            self.size = (frame.shape[1], frame.shape[0])
        if self.live and t is not None:
            self.t0 = t if self.t0 is None else self.t0
            media_t = t - self.t0
        else:
            media_t = self.frames / self.fps
        self.worker.put(video.fit_frame(frame, self.size), media_t)
        self.frames += 1

    def close(self):
        """Finish the file (it stays playable whatever happened); raises a write error."""
        self.worker.close()
        if self.worker.dropped:
            log.warning("%s: %d of %d frames not recorded (the encoder was slower than the "
                        "camera)", self.path, self.worker.dropped, self.frames)

    def written(self):
        """What this run wrote, for the user: "out.mp4 (50 frames)"."""
        return "{} ({} frames)".format(self.path, self.frames - self.worker.dropped)


class ImageOut(object):
    """Image outputs: a single file, a folder (input names kept) or a ``%d`` pattern."""

    def __init__(self, path, many, force_ext=None):
        self.path = str(path)
        self.force_ext = force_ext
        self.index = 0
        self.pattern = "%" in self.path
        self.folder = not self.pattern and (os.path.isdir(self.path) or self.path.endswith(
            ("/", os.sep)) or not os.path.splitext(self.path)[1])
        if many and not (self.pattern or self.folder):
            raise JetsegError("several inputs need a folder, a %d pattern or a video as output",
                              path=self.path, fix="give e.g. outdir/, out_%05d.jpg or out.mp4")
        if self.pattern:
            try:
                self.path % 0
            except (TypeError, ValueError):
                raise JetsegError("output pattern needs one %d", path=self.path,
                                  fix="write e.g. out_%05d.jpg")
        check = self.path % 0 if self.pattern else (
            os.path.join(self.path, "x.png") if self.folder else self.path)
        if force_ext and not self.folder and os.path.splitext(check)[1].lower() != force_ext:
            raise JetsegError("class maps must be written as {} (lossless)".format(force_ext),
                              path=self.path, fix="use a {} name or a folder".format(force_ext))
        if not self.folder and not is_image_path(check):
            raise JetsegError("unknown image type", path=self.path,
                              fix="use .jpg, .png, a folder or a %d pattern")
        if self.folder or self.pattern:     # /proc, /sys, a read-only disk: fail now
            check_writable(self.path if self.folder else os.path.dirname(check) or ".", True)
        else:
            check_writable(self.path)
        self.count = 0

    def target(self, name):
        if self.pattern:
            path = self.path % self.index
        elif self.folder:
            stem, ext = os.path.splitext(os.path.basename(name))
            ext = self.force_ext or (ext if is_image_path(name) else ".jpg")
            path = os.path.join(self.path, stem + ext)
        else:
            path = self.path
        self.index += 1
        return path

    def write(self, name, image):
        path = self.target(name)
        write_image(path, image)
        self.count += 1
        log.debug("wrote %s", path)
        return path

    def written(self):
        """What this run wrote, for the user: "out.png", "3 images into out/"."""
        if not (self.pattern or self.folder):
            return self.path if self.count else "nothing to " + self.path
        return "{} image{} {} {}".format(self.count, "" if self.count == 1 else "s",
                                         "into" if self.folder else "as", self.path)

    def close(self):
        pass

    def abort(self):
        pass


def open_output(path, many, fps=None, classes=False, live=False, codec=None, bitrate=None):
    """A video, or images (a file, a folder, a %d pattern); class maps only as PNG images."""
    if path is None:
        return None
    if is_video_path(path):
        if classes:
            raise JetsegError("class maps cannot go into a video (lossy)", path=path,
                              fix="write class maps to a folder or a class_%05d.png pattern")
        return VideoOut(path, fps, codec=codec, bitrate=bitrate, live=live)
    return ImageOut(path, many, force_ext=".png" if classes else None)


# ---- sinks: what the Pipeline writes results to ------------------------------------------
def picture_for(res, visualize):
    """The picture a sink shows: overlay, mask, overlay,mask or the class-id map."""
    if visualize == "classes":
        return res.classes
    return res.visualize(visualize)


class OutputSink(object):
    """A sink over an output with ``write(name, picture)`` (images) or
    ``write(name, picture, t)`` (videos and streams: ``t`` is the capture time)."""

    def __init__(self, out, visualize="overlay", label=""):
        self.out = out
        self.visualize = visualize
        self.label = label
        self.timed = getattr(out, "timed", False)

    def write(self, res):
        name = getattr(res, "name", "frame") or "frame"
        if self.timed:
            self.out.write(name, picture_for(res, self.visualize), res.captured_at)
        else:
            self.out.write(name, picture_for(res, self.visualize))

    def close(self):
        self.out.close()

    def written(self):
        """What a file output wrote ("3 images into out/", "out.mp4 (50 frames)"), or None
        for a stream or a window."""
        return getattr(self.out, "written", lambda: None)()

    def __repr__(self):
        return "{}({})".format(type(self).__name__, self.label)


class FileSink(OutputSink):
    """A video file, an image, a folder or a %d pattern (written atomically)."""

    def __init__(self, path, visualize="overlay", fps=None, many=True, live=False, codec=None,
                 bitrate=None):
        self.path = path
        OutputSink.__init__(self, open_output(path, many, fps=fps, classes=visualize == "classes",
                                              live=live, codec=codec, bitrate=bitrate),
                            visualize, path)


class DisplaySink(object):
    """An OpenCV window (``display://0``); q or Esc stops the loop."""

    def __init__(self, uri="display://0", visualize="overlay", on_quit=None):
        self.cv2 = need_cv2("the display")
        self.title = "jetseg " + uri
        self.visualize = visualize
        self.on_quit = on_quit
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and \
                os.name != "nt":
            raise JetsegError("no display here (DISPLAY is not set)", path=uri,
                              fix="give an output instead of a window: out.mp4, "
                                  "rtp://HOST:5600, or --serve 127.0.0.1:8080 for a browser")

    def write(self, res):
        try:
            self.cv2.imshow(self.title, picture_for(res, self.visualize))
            key = self.cv2.waitKey(1) & 0xFF
        except self.cv2.error:
            raise JetsegError("this OpenCV cannot open windows (a headless build)",
                              path=self.title, fix="use --headless with --serve or an output "
                              "file; on a Jetson use JetPack's python3-opencv")
        if key in (ord("q"), 27) and self.on_quit:
            self.on_quit()

    def close(self):
        try:
            self.cv2.destroyWindow(self.title)
        except Exception:
            pass


def open_sink(uri, visualize="overlay", fps=None, on_quit=None, many=True, live=False,
              codec=None, bitrate=None):
    """A sink for ``uri``: ``display://N``, ``rtp://HOST:PORT``, ``rtsp://@:PORT/NAME`` or a
    file output (see ``open_output``). ``many=False``: the source gives one frame, so a plain
    image file may take it. ``live``, ``codec`` (h264, h265, mjpeg), ``bitrate`` (kbit/s):
    for video outputs."""
    uri = str(uri)
    if uri.startswith("display://"):
        return DisplaySink(uri, visualize, on_quit=on_quit)
    if uri.startswith(("rtp://", "rtsp://")):
        from jetseg.io.rtp import open_network
        if visualize == "classes":
            raise JetsegError("class maps cannot be streamed (lossy video)", path=uri,
                              fix="use --visualize overlay or mask")
        return OutputSink(open_network(uri, fps=fps, codec=codec, bitrate=bitrate), visualize,
                          uri)
    if uri.startswith("webrtc://"):
        raise JetsegError("streaming out over webrtc is not supported", path=uri,
                          fix="use rtp://HOST:5600, or --serve 0.0.0.0:8080 for a browser view")
    return FileSink(uri, visualize, fps=fps, many=many, live=live, codec=codec, bitrate=bitrate)
