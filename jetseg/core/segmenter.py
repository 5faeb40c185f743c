"""``Segmenter``: a model file in, ``Segmentation`` results out (class map, overlay, mask).

    seg = Segmenter("net.onnx")
    res = seg.process(frame_bgr)
    res.classes, res.overlay(), res.mask(), res.class_fractions()
"""
import os
import time

import numpy as np

from jetseg.core import processing as render
from jetseg.backends import open_backend
from jetseg.errors import JetsegError, log
from jetseg.core.labels import fit_colors, fit_labels, read_colors, read_labels
from jetseg.core.modelinfo import ModelInfo, parse_size, parse_triple

DEFAULT_ALPHA = 150          # jetson-inference's --alpha default


def _load_list(value, reader):
    if value is None:
        return None
    if isinstance(value, str):
        return reader(value)
    return list(value)


class Segmenter(object):
    """Runs one segmentation model; see the module doc for the three-line use.

    model        .onnx (ONNX Runtime) or, later, .engine (TensorRT)
    backend      "auto" | "onnxruntime" | "tensorrt"
    labels       classes.txt path or list of names (for models without metadata)
    colors       colors.txt path or list of (r, g, b[, a])
    mean, std    normalisation on the 0..1 scale in ``channel_order`` (default ImageNet, RGB)
    input_blob, output_blob   tensor names for models with several inputs/outputs
    input_size   (W, H) or "WxH" for models with a dynamic input size
    alpha        0..255 overlay opacity for classes without an explicit alpha
    filter_mode  "point" | "linear" | "smooth" (see jetseg.render)
    ignore_class class id or name the argmax never picks
    threads      CPU threads for the backend
    keep_scores  always fetch the raw scores into ``res.scores`` (otherwise only when the
                 CPU needs them: models without argmax, smooth mode at another frame size)
    """

    def __init__(self, model, backend="auto", labels=None, colors=None, mean=None, std=None,
                 input_blob=None, output_blob=None, input_size=None, alpha=None,
                 filter_mode="linear", ignore_class=None, threads=None, providers=None,
                 channel_order=None, keep_scores=False):
        self.path = str(model)
        self.keep_scores = bool(keep_scores)
        if filter_mode not in render.FILTER_MODES:
            raise JetsegError("unknown filter mode {!r}".format(filter_mode),
                              fix="use one of: " + ", ".join(render.FILTER_MODES))
        self.filter_mode = filter_mode
        self.backend = open_backend(self.path, backend, threads=threads, providers=providers)
        info = ModelInfo.from_metadata(self.backend.metadata, source=self.path)
        if mean is not None:
            info.mean = parse_triple(mean, "mean")
        if std is not None:
            info.std = parse_triple(std, "std")
        if channel_order is not None:
            info.norm_order = channel_order.upper()
        info.resolve(self.backend.inputs, self.backend.outputs, source=self.path,
                     input_blob=input_blob, output_blob=output_blob,
                     input_size=parse_size(input_size))
        self.info = info
        self._out_names = dict((role, name) for role, name in info.outputs.items())

        num = self._num_classes(labels, colors)
        names = _load_list(labels, read_labels)
        cols = _load_list(colors, read_colors)
        self.classes = fit_labels(names if names is not None else info.classes, num,
                                  source=labels if isinstance(labels, str) else "labels")
        self.colors = fit_colors(cols if cols is not None else info.colors, num,
                                 source=colors if isinstance(colors, str) else "colors")
        baked = info.graph.get("alpha")
        self.alpha = int(alpha if alpha is not None else
                         (baked if baked is not None else DEFAULT_ALPHA))
        if not 0 <= self.alpha <= 255:
            raise JetsegError("--alpha {} is outside 0-255".format(self.alpha),
                              fix="give an opacity from 0 (clear) to 255 (opaque)")
        self.ignore_class = self._class_id(ignore_class)
        if self.ignore_class is None and info.graph.get("argmax"):
            self.ignore_class = info.graph.get("ignore_class")
        self._palettes = {}
        self._fetch_cache = {}
        self._pre = render.Preprocessor(info)
        self._cpu_argmax = self._needs_cpu_argmax(ignore_class)

    # ---- set-up helpers ----------------------------------------------------------------
    def _num_classes(self, labels, colors):
        scores = self._out_names.get("scores")
        if scores:
            t = [o for o in self.backend.outputs if o.name == scores][0]
            if t.dim(1):
                return t.dim(1)
        if self.info.classes:
            return len(self.info.classes)
        for value, reader in ((labels, read_labels), (colors, read_colors)):
            items = _load_list(value, reader)
            if items:
                return len(items)
        raise JetsegError("cannot tell how many classes the model has", path=self.path,
                          fix="pass --labels classes.txt")

    def _class_id(self, value):
        if value is None or value == "":
            return None
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            if value not in self.classes:
                raise JetsegError("--ignore-class {!r} is not a class of this model".format(value),
                                  path=self.path, fix="use one of: " + ", ".join(self.classes))
            return self.classes.index(value)
        value = int(value)
        if value < 0:
            return None
        if value >= len(self.classes):
            raise JetsegError("--ignore-class {} is not a class id (0..{})".format(
                value, len(self.classes) - 1), path=self.path, fix="give a valid class id or name")
        return value

    def _needs_cpu_argmax(self, requested):
        """True when the graph's own argmax cannot be used as it is."""
        if not self.info.graph.get("argmax") or "classes" not in self._out_names:
            return True
        baked = self.info.graph.get("ignore_class")
        if requested is None or self.ignore_class == baked:
            return False
        if "scores" in self._out_names:
            return True
        raise JetsegError(
            "the model's graph does its own argmax ignoring class {} and has no scores output, "
            "so --ignore-class {} cannot apply".format(baked, requested), path=self.path,
            fix="re-export with --ignore-class {} (or with a scores output)".format(requested))

    def palette(self, alpha=None):
        alpha = self.alpha if alpha is None else int(alpha)
        p = self._palettes.get(alpha)
        if p is None:
            p = self._palettes[alpha] = render.Palette(self.colors, alpha)
        return p

    @property
    def net_size(self):
        """(W, H) the network runs at, or None when it follows each frame's size."""
        if self.info.width and self.info.height:
            return self.info.width, self.info.height
        return None

    # ---- per frame ---------------------------------------------------------------------
    def process(self, frame, rgb=False):
        """Segment one HxWx3 uint8 frame (BGR, or RGB with ``rgb=True``)."""
        t0 = time.perf_counter()
        frame = as_bgr(frame, rgb)
        h, w = frame.shape[:2]
        size = self.net_size or (w, h)
        feeds = {self.info.input_name: self._pre(frame, size[0], size[1])}
        t1 = time.perf_counter()
        outs = self.backend.run(feeds, self._fetch(w, h))
        t2 = time.perf_counter()
        res = Segmentation(self, frame, outs)
        res.timings = {"preprocess_ms": 1000.0 * (t1 - t0), "inference_ms": 1000.0 * (t2 - t1)}
        res.latency_ms = 1000.0 * (t2 - t0)
        return res

    def _fetch(self, w, h):
        """The outputs this frame needs (ONNX Runtime then skips the rest of the graph):
        the class map, or the scores when the CPU must argmax or upsample them; the graph's
        overlay only where it can be used as it is; confidence when the graph has it."""
        names = self._fetch_cache.get((w, h))
        if names is None:
            o = self._out_names
            same = self.net_size in (None, (w, h))
            want = set(["confidence", "scores"] if self.keep_scores else ["confidence"])
            if self._cpu_argmax or (self.filter_mode == "smooth" and not same):
                want.add("scores" if "scores" in o else "classes")
            else:
                want.add("classes" if "classes" in o else "scores")
            if same and not self._cpu_argmax and self.info.graph.get("alpha") == self.alpha \
                    and self.colors == self.info.colors:
                want.add("overlay")
            names = [o[r] for r in sorted(want) if r in o]
            if len(self._fetch_cache) > 16:
                self._fetch_cache.clear()
            self._fetch_cache[(w, h)] = names
        return names

    def legend(self, present=None, fractions=None):
        return render.legend(self.classes, self.colors, present=present, fractions=fractions)

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Segmenter({!r}, backend={}, {} classes; {})".format(
            os.path.basename(self.path), self.backend.name, len(self.classes),
            self.info.describe().split(" classes, ", 1)[-1])


def as_bgr(frame, rgb=False):
    """Accept HxW grey, HxWx1, HxWx3 and HxWx4 uint8 frames; return contiguous HxWx3 BGR."""
    if not isinstance(frame, np.ndarray):
        raise JetsegError("frame is a {}, not a numpy array".format(type(frame).__name__),
                          fix="pass an HxWx3 uint8 image as OpenCV's imread gives it")
    if frame.dtype != np.uint8:
        raise JetsegError("frame has dtype {}; jetseg takes uint8 pixels 0-255".format(frame.dtype),
                          fix="convert with (img * 255).clip(0, 255).astype(np.uint8) if it is 0..1")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
        if rgb:
            frame = frame[:, :, ::-1]
    elif frame.ndim == 3 and frame.shape[2] == 3:
        if rgb:
            frame = frame[:, :, ::-1]
    else:
        raise JetsegError("frame has shape {}; jetseg takes HxW grey, HxWx3 or HxWx4 images"
                          .format(frame.shape), fix="pass an image as OpenCV's imread gives it")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise JetsegError("frame is empty ({})".format(frame.shape), fix="check the source")
    return np.ascontiguousarray(frame)


class Segmentation(object):
    """One frame's result. Heavy views (full-size classes, overlay) are made on first use."""

    def __init__(self, segmenter, frame, outputs):
        self.segmenter = segmenter
        self.frame = frame
        self.timings = {}
        self.latency_ms = None        # process() time; capture-to-output in a pipeline
        self.frame_id = None
        self.name = None
        self.captured_at = None
        names = segmenter._out_names
        self.scores = None            # C x h x w float32 at the net's output resolution
        self._classes_low = None
        self._graph_overlay = None
        self._graph_conf = None
        fetched = dict((role, outputs[n]) for role, n in names.items() if n in outputs)
        if "scores" in fetched:
            s = fetched["scores"]
            self.scores = s[0] if s.ndim == 4 else s
        if "classes" in fetched and not segmenter._cpu_argmax:
            c = np.asarray(fetched["classes"])
            c = c.reshape(c.shape[-2:])
            if c.dtype.kind == "f":
                c = np.rint(c)
            self._classes_low = c.astype(np.uint8 if len(segmenter.classes) <= 256 else np.int32)
        if "overlay" in fetched:
            o = fetched["overlay"][0]
            if o.shape[0] == 3 and o.shape[-1] != 3:
                o = o.transpose(1, 2, 0)
            if o.dtype != np.uint8:
                o = np.rint(np.clip(o, 0, 255)).astype(np.uint8)
            self._graph_overlay = o
        if "confidence" in fetched:
            c = fetched["confidence"]
            self._graph_conf = c.reshape(c.shape[-2:]).astype(np.float32)
        self._classes = None
        self._cache = {}

    @property
    def height(self):
        return self.frame.shape[0]

    @property
    def width(self):
        return self.frame.shape[1]

    @property
    def classes_lowres(self):
        """Class ids at the network's output resolution (what the net itself decided)."""
        if self._classes_low is None:
            self._classes_low = render.argmax_chw(self.scores, self.segmenter.ignore_class)
        return self._classes_low

    @property
    def classes(self):
        """HxW class ids at the frame's resolution (uint8; int32 past 256 classes)."""
        if self._classes is None:
            if self._smooth():
                self._classes = render.argmax_hwc(self._scores_full(),
                                                  self.segmenter.ignore_class)
            else:
                self._classes = render.resize_nearest(self.classes_lowres, self.width,
                                                      self.height)
        return self._classes

    def _scores_full(self):
        """Scores bilinearly upsampled to the frame (HxWxC), made once per result."""
        if "scores_full" not in self._cache:
            self._cache["scores_full"] = render.resize_linear(
                np.ascontiguousarray(self.scores.transpose(1, 2, 0)), self.width, self.height)
        return self._cache["scores_full"]

    def _smooth(self, mode=None):
        mode = mode or self.segmenter.filter_mode
        if mode != "smooth":
            return False
        if self.scores is None:
            if not getattr(self.segmenter, "_warned_smooth", False):
                log.warning("%s has no scores output; filter mode 'smooth' falls back to 'point'",
                            self.segmenter.path)
                self.segmenter._warned_smooth = True
            return False
        return True

    @property
    def confidence(self):
        """HxW softmax probability of the chosen class, or None if the model gives no scores."""
        if "confidence" not in self._cache:
            conf = self._graph_conf
            if conf is None and self.scores is not None:
                if self._smooth():
                    conf = render.softmax_max(self._scores_full())
                else:
                    conf = render.softmax_max(self.scores.transpose(1, 2, 0))
            if conf is not None:
                conf = render.resize_linear(conf, self.width, self.height)
            self._cache["confidence"] = conf
        return self._cache["confidence"]

    def _full_res_classes(self):
        low = self.classes_lowres
        return low.shape[0] == self.height and low.shape[1] == self.width

    def overlay(self, alpha=None, filter_mode=None):
        """HxWx3 uint8 BGR: class colours blended over the frame."""
        mode = filter_mode or self.segmenter.filter_mode
        key = ("overlay", alpha, mode)
        if key in self._cache:
            return self._cache[key]
        pal = self.segmenter.palette(alpha)
        if self._graph_overlay_usable(pal):
            out = self._graph_overlay
        elif mode == "linear" and not self._full_res_classes():
            out = pal.blend_linear(self.frame, self.classes_lowres)
        else:
            out = pal.blend(self.frame, self._classes_for(mode))
        self._cache[key] = out
        return out

    def _graph_overlay_usable(self, pal):
        """The graph's own overlay is the answer when it was drawn at the frame's size, from
        the same class map, with the same colours and alpha as asked for now."""
        seg = self.segmenter
        g = self._graph_overlay
        return (g is not None and g.shape == self.frame.shape and not seg._cpu_argmax
                and seg.info.graph.get("alpha") == pal.alpha and seg.colors == seg.info.colors)

    def _classes_for(self, mode):
        if mode == self.segmenter.filter_mode or (mode != "smooth" and
                                                  self.segmenter.filter_mode != "smooth"):
            return self.classes
        if self._smooth(mode):
            return render.argmax_hwc(self._scores_full(), self.segmenter.ignore_class)
        return render.resize_nearest(self.classes_lowres, self.width, self.height)

    def mask(self, filter_mode=None):
        """HxWx3 uint8 BGR colour mask (class colours, no blending)."""
        mode = filter_mode or self.segmenter.filter_mode
        key = ("mask", mode)
        if key not in self._cache:
            pal = self.segmenter.palette()
            if mode == "linear" and not self._full_res_classes():
                self._cache[key] = pal.mask_linear(self.classes_lowres, self.width, self.height)
            else:
                self._cache[key] = pal.mask(self._classes_for(mode))
        return self._cache[key]

    def visualize(self, what=("overlay",), alpha=None):
        """jetson-inference's ``--visualize``: overlay, mask, or ``overlay,mask`` side by side."""
        what = [w.strip() for w in (what.split(",") if isinstance(what, str) else what)]
        if "overlay" in what and "mask" in what:
            return render.composite(self.overlay(alpha), self.mask())
        if "overlay" in what:
            return self.overlay(alpha)
        if "mask" in what:
            return self.mask()
        raise JetsegError("cannot visualize {!r}".format(",".join(what)),
                          fix="use overlay, mask or overlay,mask")

    def class_counts(self):
        """Pixels per class at the frame's resolution (counted once per result: the web
        view, --stats and --emit all ask for it)."""
        if "counts" not in self._cache:
            n = len(self.segmenter.classes)
            self._cache["counts"] = np.bincount(self.classes.ravel(), minlength=n)[:n]
        return self._cache["counts"]

    def class_fractions(self):
        """{class name: share of the frame's pixels}, every class, in class-id order."""
        counts = self.class_counts()
        total = float(max(1, counts.sum()))
        return dict((name, float(c) / total) for name, c in zip(self.segmenter.classes, counts))
