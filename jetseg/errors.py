"""One exception type for everything a user can get wrong.

Every message names the file (or value) at fault and says how to fix it; the CLI prints
it as one line and exits with code 2 (``--debug`` shows the traceback).
"""
import logging

log = logging.getLogger("jetseg")


class JetsegError(Exception):
    """A problem the user can fix. ``str(err)`` is the whole story: what, where, fix."""

    def __init__(self, message, path=None, fix=None):
        self.message = message
        self.path = path
        self.fix = fix
        text = message
        if path is not None and str(path) not in message:
            text = "{}: {}".format(path, message)
        if fix:
            text = "{} (fix: {})".format(text, fix)
        super(JetsegError, self).__init__(text)


def need_cv2(what="this"):
    """Import OpenCV or explain how to get it without hiding JetPack's own build."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        raise JetsegError(
            "OpenCV (cv2) is needed for {}".format(what),
            fix="on a Jetson install JetPack's python3-opencv (apt-get install python3-opencv), "
                "never pip's opencv-python; on a desktop pip install 'jetseg[desktop]'")
    return cv2
