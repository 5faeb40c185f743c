"""The CPU pre/post-processing path: what an exported jetseg graph does inside itself.

Models that lack it in their graph (plain ONNX from elsewhere) get it here; tests prove both
give the same class maps and overlays. Everything works on numpy arrays in OpenCV's BGR.

Filter modes (how the low-resolution net output reaches the frame's resolution):
    point   nearest-neighbour class map (blocky, exact classes) - jetson-inference ``point``
    linear  colours and alpha interpolated bilinearly - jetson-inference ``linear``
    smooth  scores interpolated bilinearly, then argmax: crisp edges at full resolution
"""
import numpy as np

from jetseg.errors import JetsegError, need_cv2, option

FILTER_MODES = ("point", "linear", "smooth")

_index_cache = {}


def nearest_index(src, dst):
    """Half-pixel-centred nearest source index for each of ``dst`` outputs (cached)."""
    key = (src, dst)
    idx = _index_cache.get(key)
    if idx is None:
        idx = np.minimum(((np.arange(dst) + 0.5) * (float(src) / dst)).astype(np.intp), src - 1)
        if len(_index_cache) > 64:
            _index_cache.clear()
        _index_cache[key] = idx
    return idx


def resize_nearest(arr, width, height):
    """Nearest-neighbour resize of an HxW(xC) array by index lookup (exact, no cv2 quirks)."""
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr
    return arr[nearest_index(h, height)[:, None], nearest_index(w, width)[None, :]]


def nearest_counts(classes, width, height, n):
    """Pixels per class (``n`` of them) of ``resize_nearest(classes, width, height)``,
    counted at ``classes``' own resolution: each source pixel weighs as many frame pixels
    as it becomes (exact; about 4x cheaper than counting the resized map)."""
    h, w = classes.shape[:2]
    if (w, h) == (width, height):
        return np.bincount(classes.ravel(), minlength=n)[:n]
    key = ("weights", h, w, height, width)
    weights = _index_cache.get(key)
    if weights is None:
        rows = np.bincount(nearest_index(h, height), minlength=h)
        cols = np.bincount(nearest_index(w, width), minlength=w)
        weights = np.outer(rows, cols).astype(np.float64).ravel()
        if len(_index_cache) > 64:
            _index_cache.clear()
        _index_cache[key] = weights
    return np.bincount(classes.ravel(), weights, minlength=n)[:n].astype(np.int64)


def resize_linear(arr, width, height):
    """Bilinear (half-pixel centres, like ONNX Resize ``half_pixel``) resize of HxW(xC)."""
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    cv2 = need_cv2("resizing")
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] > 4:
        # OpenCV takes up to 512 channels, but in blocks of 4 it is faster and exact the same
        return np.concatenate([cv2.resize(arr[:, :, i:i + 4], (width, height),
                                          interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
                               for i in range(0, arr.shape[2], 4)], axis=2)
    out = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)
    return out.reshape((height, width) + arr.shape[2:])


def resize_frame(frame, width, height, dst=None):
    """Frame to the net's size: area averaging when shrinking (no aliasing), else bilinear."""
    cv2 = need_cv2("resizing")
    h, w = frame.shape[:2]
    interp = cv2.INTER_AREA if width <= w and height <= h else cv2.INTER_LINEAR
    if dst is not None:
        cv2.resize(frame, (width, height), dst=dst, interpolation=interp)
        return dst
    return cv2.resize(frame, (width, height), interpolation=interp)


def pixels_uint8(arr):
    """Float (or int) pixels 0..255 -> uint8, rounded and saturated, in one pass (OpenCV's
    convertScaleAbs: the frame-size overlay of a TensorRT 8.2 graph, which has no uint8
    outputs; numpy's rint/clip/astype takes three)."""
    cv2 = need_cv2("converting pixels")
    if arr.ndim == 3 and arr.shape[2] <= 4:
        return cv2.convertScaleAbs(np.ascontiguousarray(arr))
    return np.rint(np.clip(arr, 0, 255)).astype(np.uint8)


class Preprocessor(object):
    """Frame -> input tensor, into buffers allocated once per frame size (not per frame).

    ``__call__`` fills the Preprocessor's own buffers: the tensor handed back is reused by
    the next call (backends consume it before ``run`` returns, which is all it is needed
    for). ``take`` fills a buffer set of its own, for a frame prepared in one thread and run
    in another; ``give_back`` returns the set once the model has run, for the next ``take``
    (so a pipeline allocates a set per frame in flight, not per frame).
    """

    SPARES = 8          # buffer sets kept for reuse (a pipeline has a few frames in flight)

    def __init__(self, info):
        self.info = info
        self.buffers = None
        self._spare = []
        self.direct = (info.graph.get("preprocess") and info.channels == "BGR"
                       and info.input_layout == "NHWC" and info.input_dtype == "uint8")
        if not info.graph.get("preprocess"):
            self.scale, self.bias = normalize_coeffs(info)

    def _alloc(self, w, h):
        """A buffer set for (w, h): (size, net-size BGR, float work, tensor)."""
        net_hwc = np.empty((h, w, 3), np.uint8)
        if self.direct:
            return ((w, h), net_hwc, None, None)
        work = np.empty((h, w, 3), np.float32)
        shape = (1, 3, h, w) if self.info.input_layout == "NCHW" else (1, h, w, 3)
        return ((w, h), net_hwc, work, np.empty(shape, np.dtype(self.info.input_dtype)))

    def __call__(self, frame, width, height):
        if self.buffers is None or self.buffers[0] != (width, height):
            self.buffers = self._alloc(width, height)
        return self.fill(frame, self.buffers)

    def take(self, frame, width, height):
        """(tensor, buffer set) in a set no other call writes until ``give_back(set)``."""
        bufs = None
        while self._spare and bufs is None:
            try:
                bufs = self._spare.pop()        # atomic: another thread may give back
            except IndexError:
                break
            if bufs[0] != (width, height):
                bufs = None
        bufs = bufs or self._alloc(width, height)
        return self.fill(frame, bufs), bufs

    def give_back(self, bufs):
        if bufs is not None and len(self._spare) < self.SPARES:
            self._spare.append(bufs)

    def fill(self, frame, bufs):
        """The input tensor for ``frame`` in the buffer set ``bufs`` (the frame itself when
        the graph takes it as it is)."""
        (width, height), net_hwc, work, tensor = bufs
        if (frame.shape[1], frame.shape[0]) == (width, height):
            net_hwc = frame
        else:
            resize_frame(frame, width, height, dst=net_hwc)
        info = self.info
        if self.direct:
            return net_hwc[None]
        if info.graph.get("preprocess"):
            x = net_hwc if info.channels == "BGR" else net_hwc[:, :, ::-1]
        else:
            x = net_hwc if info.norm_order == "BGR" else net_hwc[:, :, ::-1]
            np.multiply(x, self.scale, out=work)
            np.add(work, self.bias, out=work)
            x = work
        np.copyto(tensor[0], x.transpose(2, 0, 1) if info.input_layout == "NCHW" else x,
                  casting="unsafe")
        return tensor


def normalize_coeffs(info):
    """(x/255 - mean)/std folded into x*scale + bias, per channel in the net's order."""
    mean = np.asarray(info.mean, np.float32)
    std = np.asarray(info.std, np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    bias = (-mean / std).astype(np.float32)
    return scale, bias


def argmax_chw(scores, ignore_class=None):
    """CxHxW scores -> HxW class ids, never choosing ``ignore_class``."""
    if ignore_class is not None and 0 <= ignore_class < scores.shape[0]:
        scores = scores.copy()
        scores[ignore_class] = -np.inf
    return scores.argmax(axis=0).astype(np.uint8 if scores.shape[0] <= 256 else np.int32)


def argmax_hwc(scores_hwc, ignore_class=None):
    """HxWxC scores -> HxW class ids, never choosing ``ignore_class``."""
    if ignore_class is not None and 0 <= ignore_class < scores_hwc.shape[2]:
        scores_hwc = scores_hwc.copy()
        scores_hwc[:, :, ignore_class] = -np.inf
    classes = scores_hwc.argmax(axis=2)
    return classes.astype(np.uint8 if scores_hwc.shape[2] <= 256 else np.int32)


def softmax_max(scores_hwc):
    m = scores_hwc.max(axis=2, keepdims=True)
    e = np.exp(scores_hwc - m)
    return (1.0 / e.sum(axis=2)).astype(np.float32)


class Palette(object):
    """Class colours as lookup tables for masks and alpha blending (BGR, uint8).

    Up to 256 classes the work is done by OpenCV's LUT and blendLinear (vectorised, no
    per-pixel Python, about 3x faster than numpy fancy indexing); beyond, by numpy.
    """

    def __init__(self, colors, alpha):
        from jetseg.core.labels import resolve_alpha
        self.colors = [tuple(c) for c in colors]
        self.alpha = int(alpha)
        rgb = np.array([c[:3] for c in colors], np.float32)
        a = np.array(resolve_alpha(colors, alpha), np.float32) / 255.0
        self.bgr = rgb[:, ::-1].astype(np.uint8)                 # mask colours
        self.a = a
        self.premult = (rgb[:, ::-1] * a[:, None]).astype(np.float32)
        self.keep = (1.0 - a).astype(np.float32)                 # share of the frame kept
        n = min(256, len(colors))
        self.lut_bgr = np.zeros((1, 256, 3), np.uint8)
        self.lut_bgr[0, :n] = self.bgr[:n]
        self.lut_a = np.zeros((1, 256), np.float32)
        self.lut_a[0, :n] = a[:n]
        self.lut_keep = (1.0 - self.lut_a).astype(np.float32)
        # one alpha for every class (the usual --alpha): the linear blend's weights are that
        # constant, so no per-pixel alpha map is made
        self.uniform = float(a[0]) if len(a) and bool((a == a[0]).all()) else None
        self.cv2 = need_cv2("drawing overlays")

    def _check(self, classes):
        if classes.size and int(classes.max()) >= len(self.bgr):
            raise JetsegError("class map holds id {} but only {} colours are known".format(
                int(classes.max()), len(self.bgr)),
                fix="pass {}/{} for every class".format(option("colors"), option("labels")))

    def _lut(self, classes):
        return classes.dtype == np.uint8 and len(self.bgr) <= 256

    def mask(self, classes):
        self._check(classes)
        if self._lut(classes):
            return self.cv2.LUT(self.cv2.merge([classes, classes, classes]), self.lut_bgr)
        return self.bgr[classes]

    def blend(self, frame, classes):
        """round(frame * (1 - a[c]) + colour[c] * a[c]) - the graph's overlay formula."""
        self._check(classes)
        if self._lut(classes):
            cv2 = self.cv2
            return cv2.blendLinear(frame, self.mask(classes), cv2.LUT(classes, self.lut_keep),
                                   cv2.LUT(classes, self.lut_a))
        out = frame.astype(np.float32) * self.keep[classes][:, :, None] + self.premult[classes]
        return np.rint(out).astype(np.uint8)

    def blend_linear(self, frame, classes_low):
        """jetson-inference's ``linear`` filter: colour and alpha looked up at the net's
        resolution, interpolated bilinearly to the frame's, then blended."""
        self._check(classes_low)
        h, w = frame.shape[:2]
        colour = resize_linear(self.mask(classes_low), w, h)
        if self.uniform is not None:
            return self.cv2.addWeighted(frame, 1.0 - self.uniform, colour, self.uniform, 0.0)
        a = resize_linear(self.cv2.LUT(classes_low, self.lut_a) if self._lut(classes_low)
                          else self.a[classes_low].astype(np.float32), w, h)
        return self.cv2.blendLinear(frame, colour, 1.0 - a, a)      # float32 (a is)

    def mask_linear(self, classes_low, width, height):
        return resize_linear(self.mask(classes_low), width, height)


def composite(overlay, mask):
    """jetson-inference's ``overlay,mask`` layout: overlay full size, mask half size beside."""
    h, w = overlay.shape[:2]
    mh, mw = max(1, h // 2), max(1, w // 2)
    out = np.zeros((h, w + mw, 3), np.uint8)
    out[:, :w] = overlay
    out[:mh, w:] = resize_nearest(mask, mw, mh)
    return out


def legend(names, colors, present=None, fractions=None, row_height=24, width=260):
    """A legend picture (BGR): a swatch and the name of each class (``present`` ones only)."""
    cv2 = need_cv2("drawing the legend")
    ids = [i for i in range(len(names)) if present is None or i in present]
    img = np.full((row_height * max(1, len(ids)) + 8, width, 3), 255, np.uint8)
    for row, i in enumerate(ids):
        y = 4 + row * row_height
        r, g, b = colors[i][:3]
        cv2.rectangle(img, (6, y + 3), (6 + row_height - 6, y + row_height - 3),
                      (int(b), int(g), int(r)), -1)
        cv2.rectangle(img, (6, y + 3), (6 + row_height - 6, y + row_height - 3), (0, 0, 0), 1)
        text = "{:>2} {}".format(i, names[i])
        if fractions is not None:
            text += "  {:.1f}%".format(100.0 * fractions[i])
        cv2.putText(img, text, (row_height + 8, y + row_height - 7), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img
