"""PyTorch vs ONNX Runtime: the check every export ends with, printed as a short table.

The reference is the PyTorch net fed the textbook normalisation of each frame; the ONNX side
is the whole composed graph fed the frame's raw pixels, so the check covers the in-graph
pre-processing, the network and the argmax (with the ignore class) together.

    agreement   share of pixels whose class id equals PyTorch's argmax (scores upsampled
                bilinearly to the frame, like the graph does)
    max|err|    largest absolute logit difference at the net's output resolution
    mIoU        against label PNGs (one class id a pixel), when given; jetseg.eval.metrics'
                definition (mean over the classes present in the labels)
"""
import glob
import os

import numpy as np

from jetseg.core import processing as render
from jetseg.errors import JetsegError
from jetseg.eval.metrics import Confusion

from .progress import Progress

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
FP32_MIN_AGREEMENT = 0.999
# float16 keeps ~3 significant digits: a net that suits it agrees on nearly every pixel; far
# less means activations overflow 65504 or cancel, and the FP16 file would be wrong
FP16_MIN_AGREEMENT = 0.99


def list_images(folder, what="--check-images"):
    if not os.path.isdir(str(folder)):
        raise JetsegError("not a folder", path=folder,
                          fix="give {} a folder of .jpg/.png frames".format(what))
    files = sorted(f for f in glob.glob(os.path.join(str(folder), "*"))
                   if f.lower().endswith(IMAGE_EXTS))
    if not files:
        raise JetsegError("folder holds no images ({})".format(", ".join(IMAGE_EXTS[:3])),
                          path=folder, fix="give {} a folder of frames".format(what))
    return files


def pick(files, count):
    """``count`` files spread evenly over the (sorted) list: more variety than the first N."""
    if not count or count >= len(files):
        return list(files)
    idx = np.linspace(0, len(files) - 1, count).round().astype(int)
    return [files[i] for i in sorted(set(idx))]


def read_frame(path, width, height):
    """An image file -> HxWx3 uint8 BGR at the net's size (as Segmenter resizes frames)."""
    from jetseg.files import read_image
    return render.resize_frame(read_image(path), width, height)


def read_label(folder, image_path, width, height):
    """The label PNG with the image's stem, nearest-resized to the net's size (or None)."""
    if folder is None:
        return None
    stem = os.path.splitext(os.path.basename(image_path))[0]
    for ext in (".png", ".PNG", ""):
        path = os.path.join(str(folder), stem + ext)
        if os.path.isfile(path):
            break
    else:
        raise JetsegError("no label file for {}".format(os.path.basename(image_path)),
                          path=folder, fix="name label PNGs like their images (same stem)")
    from jetseg.errors import need_cv2
    cv2 = need_cv2("reading label images")
    lab = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if lab is None or lab.ndim != 2:
        raise JetsegError("label is not a one-channel class-id image", path=path,
                          fix="give PNGs holding one class id a pixel (like CamVid's *annot)")
    return render.resize_nearest(lab, width, height)


def random_frames(count, width, height, seed=0):
    """Structured random frames (smooth blobs + noise) for when no real images are given."""
    rng = np.random.RandomState(seed)
    frames = []
    for _ in range(count):
        small = rng.randint(0, 256, size=(max(2, height // 16), max(2, width // 16), 3))
        frame = render.resize_linear(small.astype(np.float32), width, height)
        frame = frame + rng.randn(height, width, 3) * 12
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def check_frames(check_images, check_count, check_labels, width, height, seed=0):
    """(frames at the net's size, their labels or None, where they came from): ``check_count``
    of ``check_images`` spread over the folder, or structured random frames."""
    if check_images:
        files = pick(list_images(check_images), check_count)
        frames = [read_frame(f, width, height) for f in files]
        labels = [read_label(check_labels, f, width, height) for f in files] \
            if check_labels else None
        where = "{} frame(s) from {} at {}x{}".format(len(frames), check_images, width, height)
        return frames, labels, where
    if check_labels:
        raise JetsegError("--check-labels needs --check-images",
                          fix="give the frames the label PNGs belong to with --check-images")
    frames = random_frames(check_count, width, height, seed)
    return frames, None, "{} random frame(s) at {}x{}".format(len(frames), width, height)


def normalise(frame_bgr, mean, std, order="RGB"):
    """Textbook pre-processing, independent of the graph's: [1,3,H,W] float32."""
    x = frame_bgr[:, :, ::-1] if order == "RGB" else frame_bgr
    x = (x.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None].astype(np.float32))


def upsampled_argmax(logits, width, height, ignore_class=None):
    """[C,h,w] -> [H,W] class ids, the PyTorch way (bilinear, align_corners=False)."""
    import torch
    import torch.nn.functional as F
    t = torch.from_numpy(np.ascontiguousarray(logits))[None]
    if t.shape[2:] != (height, width):
        t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    t = t[0]
    if ignore_class is not None:
        t[ignore_class] = -float("inf")
    return t.argmax(0).numpy()


def _role(model, role):
    import json
    for p in model.metadata_props:
        if p.key == "jetseg.outputs":
            return json.loads(p.value)[role]
    raise KeyError(role)


def ort_session(model):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


class Row(object):
    def __init__(self, name, num_classes, ignore):
        self.name = name
        self.max_err = 0.0
        self.max_ref = 0.0          # largest |PyTorch logit|, for scale
        self.same = 0
        self.total = 0
        self.conf = Confusion(num_classes, ignore)
        self.has_labels = False

    @property
    def rel_err(self):
        return self.max_err / self.max_ref if self.max_ref > 0 else float("nan")

    @property
    def agreement(self):
        return float(self.same) / self.total if self.total else float("nan")

    def as_dict(self):
        return {"model": self.name, "max_abs_err": self.max_err, "rel_err": self.rel_err,
                "agreement": self.agreement,
                "miou": self.conf.miou() if self.has_labels else None}


def run_parity(net, models, frames, width, height, mean, std, norm_order="RGB",
               input_dtype="uint8", ignore_class=None, num_classes=None, labels=None,
               label_ignore=None, progress_label="parity"):
    """Compare the PyTorch ``net`` with each composed ONNX model in ``models``.

    models: [(name, ModelProto with "scores" and "classes" outputs)], frames: list of
    HxWx3 uint8 BGR at the net's size, labels: matching list of HxW class-id arrays or None.
    Returns [Row] with the PyTorch row first (mIoU only).
    """
    import torch
    sessions = [(name, ort_session(m)) for name, m in models]
    score_names = [_role(m, "scores") for _, m in models]
    rows = [Row("pytorch fp32", num_classes, label_ignore)] + \
        [Row(name, num_classes, label_ignore) for name, _ in sessions]
    dtype = np.dtype(input_dtype)
    with Progress(len(frames), progress_label) as bar:
        for i, frame in enumerate(frames):
            with torch.no_grad():
                ref = net(torch.from_numpy(normalise(frame, mean, std, norm_order)))
            ref = ref[0].float().numpy()
            ref_classes = upsampled_argmax(ref, width, height, ignore_class)
            label = labels[i] if labels is not None else None
            if label is not None:
                rows[0].has_labels = True
                rows[0].conf.add(label, ref_classes)
            for row, (_, sess), sname in zip(rows[1:], sessions, score_names):
                out = dict(zip([o.name for o in sess.get_outputs()],
                               sess.run(None, {"image": frame[None].astype(dtype)})))
                scores = out[sname][0].astype(np.float32)
                classes = np.rint(out["classes"][0]).astype(np.int64) if \
                    out["classes"].dtype.kind == "f" else out["classes"][0].astype(np.int64)
                if scores.shape != ref.shape:
                    raise JetsegError("ONNX scores have shape {}, PyTorch's {}".format(
                        scores.shape, ref.shape), fix="report this with --debug output")
                row.max_err = max(row.max_err, float(np.abs(scores - ref).max()))
                row.max_ref = max(row.max_ref, float(np.abs(ref).max()))
                row.same += int((classes == ref_classes).sum())
                row.total += classes.size
                if label is not None:
                    row.has_labels = True
                    row.conf.add(label, classes)
            bar.advance()
    return rows


def format_table(rows, where):
    """The parity table as text."""
    show_miou = any(r.has_labels for r in rows)
    head = "{:<14} {:>10} {:>9} {:>11}".format("model", "max|err|", "rel", "agreement")
    if show_miou:
        head += " {:>8}".format("mIoU")
    lines = ["parity vs PyTorch on {} (logit error absolute and relative to the largest "
             "logit; agreement = same class id):".format(where), head]
    for r in rows:
        if r.name.startswith("pytorch"):
            if not show_miou:
                continue
            line = "{:<14} {:>10} {:>9} {:>11}".format(r.name, "-", "-", "-")
        else:
            line = "{:<14} {:>10.3g} {:>9.2g} {:>10.3f}%".format(r.name, r.max_err, r.rel_err,
                                                                 100.0 * r.agreement)
        if show_miou:
            line += " {:>7.2f}%".format(100.0 * r.conf.miou())
        lines.append(line)
    return "\n".join(lines)
