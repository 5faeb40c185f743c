"""One exception type for everything a user can get wrong.

Every message names the file (or value) at fault and says how to fix it; the CLI prints
it as one line and exits with code 2 (``--debug`` shows the traceback).

A message that names an option the user set writes it with ``option("input_blob", "NAME")``:
``input_blob='NAME'`` when jetseg is called from Python, ``--input-blob NAME`` while a
command-line tool runs (``command_line_names()``, which ``jetseg.cli.common.run_guarded``
holds around every command). The text is fixed when the error is raised, so the copies of it
that other messages and log lines quote say the same.
"""
import contextlib
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


_STYLE = {"cli": False}


@contextlib.contextmanager
def command_line_names():
    """Within this block messages name options as command-line flags (see ``option``)."""
    was = _STYLE["cli"]
    _STYLE["cli"] = True
    try:
        yield
    finally:
        _STYLE["cli"] = was


def option(name, value=None, flag=None):
    """An option as the user wrote it: ``name`` is the Python argument (``input_blob``),
    ``flag`` the command line's when it is not ``--`` + name with dashes (``--input-blob``).
    Python: ``input_blob`` or ``input_blob='NAME'``; command line: ``--input-blob`` or
    ``--input-blob NAME`` (``value=True``: the bare flag, ``name=True`` from Python)."""
    if _STYLE["cli"]:
        flag = flag or "--" + name.replace("_", "-")
        return flag if value is None or value is True else "{} {}".format(flag, value)
    return name if value is None else "{}={!r}".format(name, value)


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
