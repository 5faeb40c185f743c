"""Where results go: ``display://0``, video files, image files, folders and ``%d`` patterns
(the web view, ``--serve``, is jetseg.io.web; sources are jetseg.io.sources).

A sink has ``write(result)`` and ``close()``; ``open_sink(uri)`` picks one. File sinks write
through ``open_output``: images are encoded in memory and renamed into place; a video is
written under a hidden temporary name and renamed when finished, also after Ctrl-C, so what
is there is always playable.
"""
import os

from jetseg.errors import JetsegError, log, need_cv2
from jetseg.files import is_image_path, is_video_path, publish, temp_path_for, write_image


class VideoOut(object):
    """A video file written under a temporary name, renamed into place by ``close()``."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path, fps=30.0):
        self.path = str(path)
        self.fps = float(fps or 30.0)
        self.writer = None
        self.tmp = None
        self.size = None
        self.frames = 0
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in self.FOURCC:
            raise JetsegError("cannot write video type {!r}".format(ext), path=self.path,
                              fix="use .mp4 or .avi")
        self.fourcc = self.FOURCC[ext]

    def write(self, name, frame):
        cv2 = need_cv2("writing video")
        if self.writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            self.tmp = temp_path_for(self.path)
            self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*self.fourcc),
                                          self.fps, self.size)
            if not self.writer.isOpened():
                self.writer = None
                os.unlink(self.tmp)
                raise JetsegError("OpenCV cannot write {} video".format(self.fourcc),
                                  path=self.path, fix="try .avi (MJPG), or write images with "
                                                      "an out_%05d.jpg pattern")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it into place (keeps what was written so far)."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if self.frames:
            publish(self.tmp, self.path)
        else:
            os.unlink(self.tmp)

    def abort(self):
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)


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
        log.debug("wrote %s", path)
        return path

    def close(self):
        pass

    def abort(self):
        pass


def open_output(path, many, fps=None, classes=False):
    """A video, or images (a file, a folder, a %d pattern); class maps only as PNG images."""
    if path is None:
        return None
    if is_video_path(path):
        if classes:
            raise JetsegError("class maps cannot go into a video (lossy)", path=path,
                              fix="write class maps to a folder or a class_%05d.png pattern")
        return VideoOut(path, fps)
    return ImageOut(path, many, force_ext=".png" if classes else None)


# ---- sinks: what the Pipeline writes results to ------------------------------------------
def picture_for(res, visualize):
    """The picture a sink shows: overlay, mask, overlay,mask or the class-id map."""
    if visualize == "classes":
        return res.classes
    return res.visualize(visualize)


class FileSink(object):
    """A video file, an image, a folder or a %d pattern (written atomically)."""

    def __init__(self, path, visualize="overlay", fps=None, many=True):
        self.path = path
        self.visualize = visualize
        self.out = open_output(path, many, fps=fps, classes=visualize == "classes")

    def write(self, res):
        self.out.write(getattr(res, "name", "frame") or "frame", picture_for(res, self.visualize))

    def close(self):
        self.out.close()

    def __repr__(self):
        return "FileSink({})".format(self.path)


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
                              fix="run with --headless and an output file or --serve")

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


def open_sink(uri, visualize="overlay", fps=None, on_quit=None, many=True):
    """A sink for ``uri``: ``display://N`` or a file output (see ``open_output``).
    ``many=False``: the source gives one frame, so a plain image file may take it."""
    uri = str(uri)
    if uri.startswith("display://"):
        return DisplaySink(uri, visualize, on_quit=on_quit)
    if uri.startswith(("rtp://", "rtsp://", "webrtc://")):
        raise JetsegError("streaming out over {} is not supported".format(uri.split(":")[0]),
                          path=uri, fix="use --serve 0.0.0.0:8080 for a browser view")
    return FileSink(uri, visualize, fps=fps, many=many)

