"""Node builders for frame graphs (compose.py): the camera frame shrunk to the net's size
inside the graph, and the class map and overlay brought back to the frame's size.

The downscale is OpenCV's INTER_AREA (what jetseg's CPU path does, processing.resize_frame),
written as two MatMuls with OpenCV's own weights (computeResizeAreaTab in imgproc/resize.cpp):

    float frame [1,FH,FW,3]  (NHWC: no transpose at the frame's resolution)
      -> Reshape [1,FH,FW/pw,pw*3] -> MatMul kron(Bw^T, I3)   (columns: pw source -> qw out)
      -> Reshape [1,FH/ph,ph,W*3]  -> MatMul Bh                (rows: ph source -> qh out)
      -> [1,H,W,3] -> (x 1/area) -> Round                      (cv2 rounds to uint8)

``p/q`` is the reduced ratio of frame to net size along an axis; OpenCV's weights repeat
every ``p`` source pixels, so each MatMul applies one ``q x p`` block: 1280x720 -> 320x240 is
4/1 and 3/1, 1920x1080 -> 320x240 is 6/1 and 9/2, a few MACs a pixel. Integer factors take
OpenCV's fast path (box sums times 1/area, round half to even; 2x2 rounds half up), which
the graph copies exactly: sums of integers with weights 1 are exact in float32, TF32 and
float16 alike. Other ratios use OpenCV's fractional weights, columns before rows as OpenCV
does. Either way ONNX Runtime's result equals cv2.resize(INTER_AREA) on nearly every pixel
(tests/test_framegraph.py measures it), and no other pixel by more than 1 grey level.

A ratio without a small period (1366 -> 320: 683/160) still works but its MatMul is nearly
dense; ``downscale`` reports the multiply-adds so the exporter can say so.
"""
import math

import numpy as np
from onnx import helper

from jetseg.errors import log

P = "jetseg_"
# a downscale costing more multiply-adds a frame pixel than this is worth a warning
WARN_MACS_PER_PIXEL = 200


def area_weights(src, dst):
    """[dst, src] float64: OpenCV's INTER_AREA weights along one axis (``src >= dst``),
    each row summing to 1; computed as computeResizeAreaTab does."""
    scale = 1.0 / (float(dst) / src)        # OpenCV: scale_x = 1. / inv_scale_x
    a = np.zeros((dst, src))
    for d in range(dst):
        f1 = d * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s2 = min(int(math.floor(f2)), src - 1)
        s1 = min(int(math.ceil(f1)), s2)
        if s1 - f1 > 1e-3:
            a[d, s1 - 1] = (s1 - f1) / cell
        a[d, s1:s2] = 1.0 / cell
        if f2 - s2 > 1e-3:
            a[d, s2] = min(min(f2 - s2, 1.0), cell) / cell
    return a


def period(src, dst):
    """(p, q): every ``p`` source pixels make ``q`` output pixels (the reduced ratio)."""
    g = math.gcd(src, dst)
    return src // g, dst // g


def _block(src, dst, integer):
    """The ``q x p`` block of weights every period repeats (checked, not assumed)."""
    p, q = period(src, dst)
    full = area_weights(src, dst)
    block = full[:q, :p]
    tiled = np.kron(np.eye(src // p), block)
    if not np.allclose(tiled, full, atol=1e-12):     # a weight straddles two periods
        block, p, q = full, src, dst
    return (np.ones((1, p)) if integer else block).astype(np.float32), p, q


def downscale(nodes, const, x, frame_wh, net_wh):
    """Append the nodes that shrink float NHWC ``x`` [1,FH,FW,3] to [1,H,W,3] as
    cv2.resize(INTER_AREA) of the uint8 frame does (rounded); returns (tensor, facts)."""
    (fw, fh), (w, h) = frame_wh, net_wh
    if fw < w or fh < h:
        raise ValueError("frame {}x{} is smaller than the net's input {}x{}".format(
            fw, fh, w, h))
    integer = fw % w == 0 and fh % h == 0            # OpenCV's is_area_fast
    macs = 0
    if fw != w:
        bw, pw, qw = _block(fw, w, integer)
        kron = np.kron(bw.T, np.eye(3, dtype=np.float32)).astype(np.float32)
        nodes.append(helper.make_node("Reshape", [x, const("cols_shape", np.array(
            [1, fh, fw // pw, pw * 3], np.int64))], [P + "cols_in"]))
        nodes.append(helper.make_node("MatMul", [P + "cols_in", const("cols_weights", kron)],
                                      [P + "cols_out"]))
        x = P + "cols_out"
        macs += fh * (fw // pw) * kron.size
    if fh != h:
        bh, ph, qh = _block(fh, h, integer)
        nodes.append(helper.make_node("Reshape", [x, const("rows_shape", np.array(
            [1, fh // ph, ph, w * 3], np.int64))], [P + "rows_in"]))
        nodes.append(helper.make_node("MatMul", [const("rows_weights", bh), P + "rows_in"],
                                      [P + "rows_out"]))
        x = P + "rows_out"
        macs += (fh // ph) * bh.size * w * 3
    nodes.append(helper.make_node("Reshape", [x, const("net_shape", np.array(
        [1, h, w, 3], np.int64))], [P + "area"]))
    x = P + "area"
    if integer and (fw, fh) != (w, h):
        area = (fw // w) * (fh // h)
        nodes.append(helper.make_node("Mul", [x, const("area_scale", np.array(
            1.0 / area, np.float32))], [P + "area_mean"]))
        x = P + "area_mean"
        if area == 4:           # OpenCV's 2x2 uint8 path: (a + b + c + d + 2) >> 2
            nodes.append(helper.make_node("Add", [x, const("half", np.array(0.5, np.float32))],
                                          [P + "area_half"]))
            nodes.append(helper.make_node("Floor", [P + "area_half"], [P + "net_pixels"]))
            x = None
    if x is not None:
        nodes.append(helper.make_node("Round", [x], [P + "net_pixels"]))
    if macs > WARN_MACS_PER_PIXEL * fw * fh:
        log.warning("shrinking %dx%d frames to %dx%d has no short period (%d/%d across, %d/%d "
                    "down): the in-graph downscale costs %.2f G multiply-adds a frame; a net "
                    "input size that divides the frame more simply is far cheaper", fw, fh, w,
                    h, period(fw, w)[0], period(fw, w)[1], period(fh, h)[0], period(fh, h)[1],
                    macs / 1e9)
    facts = {"method": "area", "exact_as": "cv2.resize INTER_AREA on the uint8 frame",
             "path": "integer box" if integer else "fractional weights",
             "macs": int(macs)}
    return P + "net_pixels", facts


def resize(nodes, const, x, sizes, mode, name, out=None):
    """Resize ``x`` to ``sizes`` (half-pixel centres). Nearest picks source index
    floor((i + 0.5) * src / dst), as processing.nearest_index does (round_prefer_ceil of the
    half-pixel coordinate); linear is OpenCV's INTER_LINEAR."""
    attrs = {"mode": mode, "coordinate_transformation_mode": "half_pixel"}
    if mode == "nearest":
        attrs["nearest_mode"] = "round_prefer_ceil"
    nodes.append(helper.make_node(
        "Resize", [x, "", "", const(name + "_sizes", np.array(sizes, np.int64))],
        [out or P + name], **attrs))
    return out or P + name


def overlay_at_frame(nodes, const, pixels, ids, table_bgr, alpha, frame_wh, filter_mode):
    """Colour and alpha looked up at the class map's resolution, brought to the frame's by
    ``filter_mode`` (point: nearest, linear: bilinear, as jetson-inference and
    processing.Palette.blend_linear do), then blended: frame + (colour - frame) * a.

    Planar (NCHW) from the lookup on: Gather along the table's class axis gives [3,1,h,w]
    and [1,1,h,w] directly, NCHW resizes touch the innermost dims only (TensorRT's rule), and
    the alpha multiplies across channels without a broadcast over the innermost axis (which
    costs ONNX Runtime 15x a plain multiply). The frame is made planar once and the blend
    made interleaved again once. Returns the float NHWC tensor before Round."""
    fw, fh = frame_wh
    mode = {"point": "nearest", "linear": "linear"}[filter_mode]
    planes = np.ascontiguousarray(table_bgr.T, np.float32)             # [3, C]
    nodes.append(helper.make_node("Gather", [const("colour_planes", planes), ids],
                                  [P + "colour_gathered"], axis=1))     # [3, 1, h, w]
    nodes.append(helper.make_node("Reshape", [P + "colour_gathered", const(
        "planar_shape", np.array([1, 3, 0, 0], np.int64))], [P + "colour_low"]))
    nodes.append(helper.make_node("Gather", [const("alpha_plane", alpha[None, :].astype(
        np.float32)), ids], [P + "alpha_low"], axis=1))                 # [1, 1, h, w]
    colour = resize(nodes, const, P + "colour_low", [1, 3, fh, fw], mode, "colour_px")
    a = resize(nodes, const, P + "alpha_low", [1, 1, fh, fw], mode, "alpha_px")
    nodes.append(helper.make_node("Transpose", [pixels], [P + "frame_planar"],
                                  perm=[0, 3, 1, 2]))
    nodes.append(helper.make_node("Sub", [colour, P + "frame_planar"], [P + "towards"]))
    nodes.append(helper.make_node("Mul", [P + "towards", a], [P + "moved"]))
    nodes.append(helper.make_node("Add", [P + "frame_planar", P + "moved"],
                                  [P + "blend_planar"]))
    nodes.append(helper.make_node("Transpose", [P + "blend_planar"], [P + "blend"],
                                  perm=[0, 2, 3, 1]))
    return P + "blend"


def classes_at_frame(nodes, const, ids_float, frame_wh, out=None):
    """Class ids (as float: TensorRT resizes no integer tensor) brought to the frame's size by
    nearest neighbour, as processing.resize_nearest does."""
    fw, fh = frame_wh
    return resize(nodes, const, ids_float, [1, fh, fw], "nearest", "classes_px", out)
