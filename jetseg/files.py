"""Reading frames and writing results so that nothing half-written is ever left behind."""
import os
import tempfile

import numpy as np

from jetseg.errors import JetsegError, need_cv2

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".flv")


def is_image_path(path):
    return str(path).lower().endswith(IMAGE_EXTS)


def is_video_path(path):
    return str(path).lower().endswith(VIDEO_EXTS)


def _check_dir_writable(path):
    d = os.path.dirname(os.path.abspath(str(path)))
    if not os.path.isdir(d):
        try:
            os.makedirs(d)
        except OSError as e:
            raise JetsegError("cannot create output folder {}: {}".format(d, e.strerror),
                              path=path, fix="choose an output path in a folder you can write")
    if not os.access(d, os.W_OK):
        raise JetsegError("output folder {} is not writable".format(d), path=path,
                          fix="choose an output path in a folder you can write")
    return d


def temp_path_for(path):
    """A fresh hidden name beside ``path`` with the same extension (for atomic replace)."""
    d = _check_dir_writable(path)
    base = os.path.basename(str(path))
    ext = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".part" + ext, dir=d)
    os.close(fd)
    return tmp


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
                              fix="check free space and permissions of the output folder")
        raise


def encode_image(path, image):
    cv2 = need_cv2("writing images")
    ext = os.path.splitext(str(path))[1].lower() or ".png"
    if ext not in IMAGE_EXTS:
        raise JetsegError("unknown image type {!r}".format(ext), path=path,
                          fix="use .png, .jpg, .bmp or .tif")
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise JetsegError("OpenCV could not encode the image", path=path,
                          fix="use .png or .jpg")
    return buf.tobytes()


def write_image(path, image):
    write_atomic(path, encode_image(path, image))


def read_image(path):
    """A BGR uint8 HxWx3 frame from an image file, or a JetsegError that says why not."""
    cv2 = need_cv2("reading images")
    path = str(path)
    if not os.path.exists(path):
        raise JetsegError("no such file", path=path, fix="check the input path")
    if os.path.isdir(path):
        raise JetsegError("is a folder, not an image", path=path,
                          fix="pass the folder as input to read every image in it")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise JetsegError("not a readable image (empty, truncated or not an image format)",
                          path=path, fix="give a .jpg/.png/.bmp image, or a video file")
    return img
