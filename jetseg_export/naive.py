"""The naive PyTorch loop ``jetseg bench`` compares against (desktop, torch eager).

What people write first: per frame, torchvision-style transforms (PIL-free but per-frame
tensor conversions), the eager model, ``argmax`` moved to numpy, and an overlay painted
with a Python loop over the classes. The weights are random: only speed is measured, and
the network is the model file's own architecture (``jetseg.arch`` in its metadata).
"""
import numpy as np


def naive_torch_loop(arch, seg):
    """A function ``run(frames) -> count`` for the model behind ``seg`` (a Segmenter)."""
    import cv2
    import torch
    import torch.nn.functional as F
    from .archs import ARCHS, LogitsOnly, build_arch
    if arch not in ARCHS:
        raise ValueError("not a jetseg export architecture")
    num = len(seg.classes)
    net = LogitsOnly(build_arch(arch, num)).eval()
    size = seg.net_size
    mean = torch.tensor(seg.info.mean).view(3, 1, 1)
    std = torch.tensor(seg.info.std).view(3, 1, 1)
    colors = seg.colors
    alpha = seg.alpha

    def one(frame):
        h, w = frame.shape[:2]
        img = cv2.resize(frame, size) if size else frame
        x = torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0
        x = ((x - mean) / std).unsqueeze(0)
        with torch.no_grad():
            logits = net(x)
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        classes = logits[0].argmax(0).numpy()
        overlay = frame.astype(np.float64)
        for c in range(num):
            m = classes == c
            a = (colors[c][3] if len(colors[c]) > 3 else alpha) / 255.0
            overlay[m] = overlay[m] * (1 - a) + np.array(colors[c][:3][::-1]) * a
        return overlay.astype(np.uint8)

    def run(frames):
        for f in frames:
            one(f)
        return len(frames)
    return run
