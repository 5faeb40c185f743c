"""Where results go: ``display://0``, video files, image files / folders / ``%d`` patterns,
the web view (``--serve``). A sink has ``write(result)`` and ``close()``."""
import os

from jetseg.errors import JetsegError, need_cv2
from jetseg.io.outputs import open_output


def render(res, visualize):
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
        self.out.write(getattr(res, "name", "frame") or "frame", render(res, self.visualize))

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
            self.cv2.imshow(self.title, render(res, self.visualize))
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
    """``many=False``: the source gives one frame, so a plain image file may take it."""
    uri = str(uri)
    if uri.startswith("display://"):
        return DisplaySink(uri, visualize, on_quit=on_quit)
    if uri.startswith(("rtp://", "rtsp://", "webrtc://")):
        raise JetsegError("streaming out over {} is not supported".format(uri.split(":")[0]),
                          path=uri, fix="use --serve 0.0.0.0:8080 for a browser view")
    return FileSink(uri, visualize, fps=fps, many=many)

