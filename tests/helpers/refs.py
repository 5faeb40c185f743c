"""Plain numpy references, written independently of jetseg's own code."""
import numpy as np


def bilinear_half_pixel(a, out_h, out_w):
    """[C,h,w] -> [C,out_h,out_w], half-pixel centres, edge clamped (ONNX/OpenCV linear)."""
    c, h, w = a.shape

    def axis(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0)

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    a = a.astype(np.float64)
    top = a[:, y0][:, :, x0] * (1 - fx) + a[:, y0][:, :, x1] * fx
    bot = a[:, y1][:, :, x0] * (1 - fx) + a[:, y1][:, :, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def blend(frame_bgr, classes, colors, alpha):
    """Alpha-blend class colours (RGB[A]) over a BGR frame: round(f*(1-a) + c*a)."""
    out = np.empty(frame_bgr.shape, np.float64)
    for y in range(classes.shape[0]):
        for x in range(classes.shape[1]):
            col = colors[classes[y, x]]
            a = (col[3] if len(col) > 3 else alpha) / 255.0
            bgr = np.array(col[:3][::-1], np.float64)
            out[y, x] = frame_bgr[y, x] * (1 - a) + bgr * a
    return np.rint(out).astype(np.uint8)


def argmax_checked(logits, classes, margin=1e-4):
    """Assert ``classes`` is the argmax of [C,H,W] ``logits`` wherever the top-2 gap is clear."""
    ref = logits.argmax(axis=0)
    top2 = np.sort(logits, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > margin
    assert clear.mean() > 0.98, "too many near ties for a meaningful check"
    assert np.array_equal(classes[clear], ref[clear])
