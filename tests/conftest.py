import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tinymodels import TinyNet  # noqa: E402

NAMES5 = ["sky", "road", "tree", "car", "person"]
COLORS5 = [(128, 128, 128), (128, 64, 128), (128, 128, 0), (64, 0, 128, 255), (64, 64, 0)]


@pytest.fixture(scope="session")
def camvid():
    if not (CAMVID / "val").is_dir():
        pytest.skip("CamVid not found at {} (see DEVELOPERS.md: real-data tests read "
                    "../shared/datasets/camvid)".format(CAMVID))
    return CAMVID


@pytest.fixture(scope="session")
def camvid_frames(camvid):
    import cv2
    files = sorted((camvid / "val").glob("*.jpg"))[:4]
    return [cv2.imread(str(f)) for f in files]


@pytest.fixture
def tiny(tmp_path):
    """(TinyNet, path of its plain ONNX): 5 classes, 32x24 input, logits at 1/4 resolution."""
    net = TinyNet(num_classes=5, width=32, height=24, down=4)
    return net, net.save(tmp_path / "plain.onnx")


@pytest.fixture
def labels_files(tmp_path):
    lab = tmp_path / "classes.txt"
    lab.write_text("".join(n + "\n" for n in NAMES5))
    col = tmp_path / "colors.txt"
    col.write_text("".join(" ".join(map(str, c)) + "\n" for c in COLORS5))
    return str(lab), str(col)


def run_cli(*args, env=None, timeout=120):
    """Run the installed console entry point in a fresh interpreter, like a user would."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "jetseg.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, env=e, cwd=str(ROOT))


def rng_frame(w, h, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def write_video(path, frames=12, size=(64, 48), fps=10.0, frame_fn=None):
    """An MJPG .avi of ``frames`` frames (random ones unless ``frame_fn(i)`` draws them)."""
    import cv2
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        w.write(frame_fn(i) if frame_fn else rng_frame(size[0], size[1], seed=i))
    w.release()
    return str(path)


def count_frames(path):
    """Frames OpenCV can decode from a video file (0 if it cannot open it)."""
    import cv2
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(autouse=True)
def keep_logging():
    """CLI entry points called in-process configure the 'jetseg' logger; undo it after."""
    import logging
    log = logging.getLogger("jetseg")
    saved = (list(log.handlers), log.level, log.propagate)
    yield log
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])          # setLevel, not the attribute: it clears logging's cache
    log.propagate = saved[2]
