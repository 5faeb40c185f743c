"""The loops ``jetseg bench`` compares jetseg's pipeline with: what people write first (numpy
and the backend's raw scores; torch eager when jetseg_export can rebuild the architecture),
and the frames-a-second timer every row of the table uses."""
import time

import numpy as np

from jetseg.errors import log


def fps_of(fn):
    """``fn()`` returns the frames it did: frames a second, wall time."""
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def timed(fn, repeats):
    return [fps_of(fn) for _ in range(repeats)]


def naive_ort(seg, frames, repeats):
    """The loop people write first: per-frame float64 transforms, NCHW numpy argmax,
    a Python loop over classes for the overlay; the model's raw scores from the backend."""
    import cv2
    info = seg.info
    scores_name = info.outputs.get("scores")
    if scores_name is None:
        return None, "the model file has no raw scores output"
    size = seg.net_size
    mean = np.array(info.mean).reshape(3, 1, 1)
    std = np.array(info.std).reshape(3, 1, 1)
    colors = seg.colors

    def one(frame):
        h, w = frame.shape[:2]
        img = cv2.resize(frame, size) if size else frame
        if info.graph.get("preprocess"):
            x = img[None].astype(np.dtype(info.input_dtype))
        else:
            rgb = img[:, :, ::-1] / 255.0
            x = ((rgb.transpose(2, 0, 1) - mean) / std)[None].astype(np.float32)
        scores = seg.backend.run({info.input_name: x}, names=[scores_name])[scores_name][0]
        classes = np.argmax(scores, axis=0)
        classes = cv2.resize(classes.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        overlay = frame.astype(np.float64)
        for c in range(len(colors)):
            m = classes == c
            a = (colors[c][3] if len(colors[c]) > 3 else seg.alpha) / 255.0
            overlay[m] = overlay[m] * (1 - a) + np.array(colors[c][:3][::-1]) * a
        return overlay.astype(np.uint8)

    def run():
        for f in frames:
            one(f)
        return len(frames)
    one(frames[0])
    return timed(run, repeats), None


def naive_torch(seg, frames, repeats):
    """Torch eager with per-frame transforms, when jetseg_export (desktop, torch) can rebuild
    the model's architecture (weights do not matter for speed). The runtime itself never
    imports torch: only this optional baseline, through jetseg_export, does."""
    import importlib
    try:
        naive = importlib.import_module("jetseg_export.naive")
    except ImportError as e:
        return None, "needs the export extra with torch ({})".format(e)
    arch = seg.info.extra.get("arch")
    try:
        fn = naive.naive_torch_loop(arch, seg)
    except Exception as e:          # an arch torch cannot rebuild: report, do not fail
        log.debug("torch baseline: %s", e)
        return None, "architecture {!r} cannot be rebuilt in torch ({})".format(arch, e)
    fn(frames[:1])
    return timed(lambda: fn(frames), repeats), None
