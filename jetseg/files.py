"""Reading frames and writing results so that nothing half-written is ever left behind."""
import errno
import os
import re
import stat
import tempfile

import numpy as np

from jetseg.errors import JetsegError, need_cv2
from jetseg.imagesize import check_pixels, image_size

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".flv")


def is_image_path(path):
    return str(path).lower().endswith(IMAGE_EXTS)


def is_video_path(path):
    return str(path).lower().endswith(VIDEO_EXTS)


WRITE_FIX = "write into a folder of your own, e.g. out/ or ~/results/"


def _check_dir_writable(path):
    d = os.path.dirname(os.path.abspath(str(path)))
    if not os.path.isdir(d):
        try:
            os.makedirs(d)
        except OSError as e:
            raise JetsegError("cannot create output folder {}: {}".format(d, e.strerror),
                              path=path, fix=WRITE_FIX)
    if not os.access(d, os.W_OK):
        raise JetsegError("output folder {} is not writable".format(d), path=path,
                          fix=WRITE_FIX)
    return d


def temp_path_for(path):
    """A fresh hidden name beside ``path`` with the same extension (for atomic replace).
    Creating it is the real test of the folder (root passes ``os.access`` on /proc and
    /sys, where no file can be made)."""
    d = _check_dir_writable(path)
    base = os.path.basename(str(path))
    ext = os.path.splitext(base)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".part" + ext, dir=d)
    except (IOError, OSError) as e:
        raise JetsegError("cannot create a file in {}: {}".format(d, e.strerror or e),
                          path=path, fix=WRITE_FIX)
    os.close(fd)
    return tmp


def check_writable(path, folder=False):
    """Fail now, with the one-line error, when no file can be written beside ``path`` (in
    it: ``folder``; made if need be)."""
    if not folder:
        os.unlink(temp_path_for(path))
        return
    path = str(path).rstrip("/" + os.sep) or "/"
    try:
        os.unlink(temp_path_for(os.path.join(path, "probe")))
    except JetsegError as e:
        raise JetsegError(e.message, path=path, fix=e.fix)


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp, path):
    """Move a finished temporary file into place with normal permissions (mkstemp's are
    0600)."""
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, str(path))


def write_atomic(path, data):
    """Write bytes to ``path`` via a temp file + rename: readers see old or new, never half."""
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (IOError, OSError)):
            raise JetsegError("cannot write output: {}".format(e.strerror or e), path=path,
                              fix="check free space and permissions of the output folder, "
                                  "or " + WRITE_FIX)
        raise


def encode_image(path, image):
    cv2 = need_cv2("writing images")
    ext = os.path.splitext(str(path))[1].lower() or ".png"
    if ext not in IMAGE_EXTS:
        raise JetsegError("unknown image type {!r}".format(ext), path=path,
                          fix="use .png, .jpg, .bmp or .tif")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(ext, image, params)
    except cv2.error as e:
        raise JetsegError("OpenCV could not encode the image: " + _cv2_reason(e), path=path,
                          fix="use .png (JPEG and WebP stop at 65535 pixels a side)")
    if not ok:
        raise JetsegError("OpenCV could not encode the image", path=path,
                          fix="use .png or .jpg")
    return buf.tobytes()


def write_image(path, image):
    write_atomic(path, encode_image(path, image))


def _cv2_reason(e):
    """The useful part of a cv2.error ("... error: (-215:Assertion failed) WHY in function")."""
    m = re.search(r"error: \([^)]*\) (.*?)(?: in function .*)?$", str(e).strip(), re.S)
    return (m.group(1) if m else str(e).strip()).strip()


READ_FIX = "check that the file exists and that you may read it (ls -l)"


def read_image(path, max_megapixels=None):
    """A BGR uint8 HxWx3 frame from an image file, or a JetsegError that says why not.
    Images over the pixel limit (jetseg.imagesize.max_pixels: ``max_megapixels``,
    $JETSEG_MAX_MEGAPIXELS or 64) are refused from their header, before decoding."""
    cv2 = need_cv2("reading images")
    path = str(path)
    try:
        mode = os.stat(path).st_mode
    except (IOError, OSError) as e:
        if e.errno != errno.ENOENT:
            raise JetsegError("cannot read it: {}".format(e.strerror or e), path=path,
                              fix=READ_FIX)
        broken = os.path.islink(path)
        raise JetsegError("no such file" + (" (a broken link)" if broken else ""), path=path,
                          fix="check the input path")
    if stat.S_ISDIR(mode):
        raise JetsegError("is a folder, not an image", path=path,
                          fix="pass the folder as input to read every image in it")
    if not stat.S_ISREG(mode):
        raise JetsegError("not a regular file (a device, pipe or socket)", path=path,
                          fix="give an image file")
    try:
        size = image_size(path)
        check_pixels(size, path, max_megapixels)
        data = np.fromfile(path, dtype=np.uint8)
    except (IOError, OSError) as e:
        raise JetsegError("cannot read it: {}".format(e.strerror or e), path=path,
                          fix=READ_FIX)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as e:
        raise JetsegError("OpenCV cannot decode it: " + _cv2_reason(e), path=path,
                          fix="give a .jpg/.png/.bmp image of sensible size")
    if img is None:
        raise JetsegError("not a readable image (empty, truncated or not an image format)",
                          path=path, fix="give a .jpg/.png/.bmp image, or a video file")
    return img
