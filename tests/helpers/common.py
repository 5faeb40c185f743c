"""Paths, label sets and small helpers shared by the tests."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"

NAMES5 = ["sky", "road", "tree", "car", "person"]
COLORS5 = [(128, 128, 128), (128, 64, 128), (128, 128, 0), (64, 0, 128, 255), (64, 64, 0)]


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
