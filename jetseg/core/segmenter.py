"""``Segmenter``: a model file in, ``Segmentation`` results out (class map, overlay, mask).

    seg = Segmenter("net.onnx")
    res = seg.process(frame_bgr)
    res.classes, res.overlay(), res.mask(), res.class_fractions()

The Segmenter decides once, when it is made, which outputs to fetch and whether the graph's
own overlay can be used (its ``plan``, see jetseg.core.result); each ``process`` then runs
the model and hands the fetched tensors and the plan to a ``Segmentation``.

Frames of another size than the net's go through a frame graph made for that size when one
is beside the model (jetseg.core.framegraph), else through the CPU path; either way one log
line says which, once per frame size.
"""
import os
import time

import numpy as np

from jetseg.backends import open_backend
from jetseg.core import framegraph, processing
from jetseg.core.labels import (check_count, class_ids, fit_colors, fit_labels, read_colors,
                                read_labels)
from jetseg.core.modelinfo import ModelInfo, parse_size, parse_triple
from jetseg.core.result import OutputPlan, Segmentation
from jetseg.errors import JetsegError, log, option

__all__ = ["Segmenter", "Segmentation", "as_bgr"]

DEFAULT_ALPHA = 150          # jetson-inference's --alpha default


def _source(value, name):
    """How messages name the labels / colours a user gave: the file, or the argument."""
    return value if isinstance(value, str) else option(name)


def _load_list(value, reader):
    if value is None:
        return None
    if isinstance(value, str):
        return reader(value)
    return list(value)


class Segmenter(object):
    """Runs one segmentation model; see the module doc for the three-line use.

    model        .onnx (ONNX Runtime; on a Jetson with TensorRT, an engine cached beside it)
                 or .engine / .plan (TensorRT)
    backend      "auto" | "onnxruntime" | "openvino" | "tensorrt" (auto: see
                 jetseg.backends.auto_backend; ``jetseg doctor`` says what it picks here)
    labels       classes.txt path or list of names (for models without metadata)
    colors       colors.txt path or list of (r, g, b[, a])
    labels_mismatch_ok   accept ``labels`` / ``colors`` whose count differs from the
                 model's classes (missing names become "class #N", missing colours are
                 generated, extra entries are dropped); otherwise that is a JetsegError
    mean, std    normalisation on the 0..1 scale in ``channel_order`` (default ImageNet, RGB)
    input_blob, output_blob   tensor names for models with several inputs/outputs
    input_size   (W, H) or "WxH" for models with a dynamic input size
    alpha        0..255 overlay opacity for classes without an explicit alpha
    filter_mode  "point" | "linear" | "smooth" (see jetseg.core.processing); default linear,
                 or a frame graph's own (baked in at export)
    ignore_class class id or name the argmax never picks (a negative id: none)
    threads      CPU threads for the backend (default: every physical core)
    precision    the arithmetic the backend runs the model in: OpenVINO "fp32" (default: the
                 exported graph's own numbers), "bf16" (several times faster on CPUs with
                 AMX or AVX512-BF16; a few class ids in a thousand may change), "fp16",
                 "auto" (the CPU's own choice); TensorRT, building an .onnx on a Jetson:
                 "fp32", "fp16" or "int8" (default: see jetseg build). ONNX Runtime runs
                 the graph's own types and ignores it (with a warning). A Q/DQ INT8 model
                 runs in INT8 on every backend whatever this says.
    keep_scores  always fetch the raw scores into ``res.scores`` (otherwise only when the
                 CPU needs them: models without argmax, smooth mode at another frame size)
    frame_graph  "auto": frames of another size than the net's use a frame graph for their
                 size beside the model (framegraph.sibling_names) when there is one, else
                 the CPU path (said in one log line); a path: that frame graph for frames
                 of its size; None: always the CPU path
    """

    def __init__(self, model, backend="auto", labels=None, colors=None, mean=None, std=None,
                 input_blob=None, output_blob=None, input_size=None, alpha=None,
                 filter_mode=None, ignore_class=None, threads=None, providers=None,
                 channel_order=None, keep_scores=False, frame_graph="auto",
                 labels_mismatch_ok=False, precision=None):
        self.path = str(model)
        self.keep_scores = bool(keep_scores)
        self._options = dict(backend=backend, labels=labels, colors=colors, mean=mean, std=std,
                             alpha=alpha, filter_mode=filter_mode, ignore_class=ignore_class,
                             threads=threads, providers=providers, channel_order=channel_order,
                             keep_scores=keep_scores, labels_mismatch_ok=labels_mismatch_ok,
                             precision=precision)
        self.frame_graph = frame_graph
        self._routes = {}               # frame size -> the Segmenter for it (None: this one)
        if filter_mode is not None and filter_mode not in processing.FILTER_MODES:
            raise JetsegError("unknown filter mode {!r}".format(filter_mode),
                              fix="use one of: " + ", ".join(processing.FILTER_MODES))
        self.filter_mode = filter_mode or "linear"
        self.backend = open_backend(self.path, backend, threads=threads, providers=providers,
                                    precision=precision)
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
        if info.frame:
            self._frame_filter(filter_mode)

        num = self._num_classes(labels, colors)
        names = check_count(_load_list(labels, read_labels), num, _source(labels, "labels"),
                            "labels", labels_mismatch_ok)
        cols = check_count(_load_list(colors, read_colors), num, _source(colors, "colors"),
                           "colors", labels_mismatch_ok)
        self.classes = fit_labels(names if names is not None else info.classes, num,
                                  source=_source(labels, "labels"))
        self.colors = fit_colors(cols if cols is not None else info.colors, num,
                                 source=_source(colors, "colors"))
        baked = info.graph.get("alpha")
        self.alpha = int(alpha if alpha is not None else
                         (baked if baked is not None else DEFAULT_ALPHA))
        if not 0 <= self.alpha <= 255:
            raise JetsegError("{} is outside 0-255".format(option("alpha", self.alpha)),
                              fix="give an opacity from 0 (clear) to 255 (opaque)")
        self.ignore_class = self._ignore_id(ignore_class)
        if self.ignore_class is None and info.graph.get("argmax"):
            self.ignore_class = info.graph.get("ignore_class")
        self._palettes = {}
        self._pre = processing.Preprocessor(info)
        self.plan = self._output_plan(ignore_class)
        if self.filter_mode == "smooth" and not self.plan.has_scores and not info.frame:
            log.warning("%s has no scores output; filter mode 'smooth' falls back to 'point'",
                        self.path)

    # ---- set-up helpers ----------------------------------------------------------------
    def _frame_filter(self, asked):
        """A frame graph draws with the filter mode it was exported with."""
        own = self.info.frame["filter"]
        if asked not in (None, own) and self.net_size != (self.info.frame["net_width"],
                                                          self.info.frame["net_height"]):
            log.info("%s brings its outputs to the frame with filter mode %r (chosen at "
                     "export); %r does not apply", self.path, own, asked)
        self.filter_mode = own

    def _num_classes(self, labels, colors):
        scores = self.info.outputs.get("scores")
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
                          fix="pass {}".format(option("labels", "classes.txt")))

    def _ignore_id(self, value):
        """``--ignore-class`` as a class id; None (and negative ids) mean no class."""
        if value is None or value == "" or (str(value).strip().lstrip("-").isdigit()
                                            and int(value) < 0):
            return None
        try:
            return class_ids(value, self.classes, option("ignore_class"))[0]
        except JetsegError as e:
            raise JetsegError(e.message, path=self.path, fix=e.fix)

    def _output_plan(self, requested):
        """Decide once what each frame fetches and how its result reads it (see OutputPlan)."""
        info, names = self.info, dict(self.info.outputs)
        cpu_argmax = self._needs_cpu_argmax(requested, names)
        graph_overlay = (not cpu_argmax and info.graph.get("alpha") == self.alpha
                         and self.colors == info.colors)
        return OutputPlan(names, cpu_argmax, graph_overlay, self.alpha,
                          smooth=self.filter_mode == "smooth", keep_scores=self.keep_scores)

    def _needs_cpu_argmax(self, requested, names):
        """True when the graph's own argmax cannot be used as it is."""
        if not self.info.graph.get("argmax") or "classes" not in names:
            return True
        baked = self.info.graph.get("ignore_class")
        if requested is None or self.ignore_class == baked:
            return False
        if "scores" in names:
            return True
        own = "over every class" if baked is None else "ignoring class {} ({})".format(
            baked, self.classes[baked] if 0 <= baked < len(self.classes) else "?")
        raise JetsegError(
            "the model's graph does its own argmax {} and has no scores output, so {} cannot "
            "apply".format(own, option("ignore_class", requested)), path=self.path,
            fix="re-export it with --scores (any class can then be ignored at run time) or "
                "with --ignore-class {} (jetseg export)".format(requested))

    def palette(self, alpha=None):
        alpha = self.alpha if alpha is None else int(alpha)
        p = self._palettes.get(alpha)
        if p is None:
            p = self._palettes[alpha] = processing.Palette(self.colors, alpha)
        return p

    @property
    def net_size(self):
        """(W, H) the network runs at, or None when it follows each frame's size."""
        if self.info.width and self.info.height:
            return self.info.width, self.info.height
        return None

    # ---- per frame ---------------------------------------------------------------------
    def feeds(self, frame):
        """{input name: tensor} for an HxWx3 BGR uint8 frame. The tensor is a buffer the next
        call reuses (backends consume it before ``run`` returns): copy it to keep it."""
        h, w = frame.shape[:2]
        size = self.net_size or (w, h)
        return {self.info.input_name: self._pre(frame, size[0], size[1])}

    def prepare(self, frame, rgb=False):
        """The model-free first half of ``process``: the frame as BGR, routed as ``process``
        routes it (to a frame graph for its size, see ``_route``) and resized/normalised into
        input buffers of its own. Hand it to ``process(prepared=...)`` (once): another thread
        can prepare the next frame while the model runs this one, as a Pipeline's capture
        thread does. The same result as ``process(frame)``, which is these two steps."""
        t0 = time.perf_counter()
        frame = as_bgr(frame, rgb)
        size = (frame.shape[1], frame.shape[0])
        seg = self
        if self.net_size not in (None, size):
            seg = (self._routes[size] if size in self._routes else self._route(size)) or self
        w, h = seg.net_size or size
        tensor, buffers = seg._pre.take(frame, w, h)
        return Prepared(self, seg, frame, {seg.info.input_name: tensor}, buffers,
                        1000.0 * (time.perf_counter() - t0))

    def process(self, frame=None, rgb=False, prepared=None):
        """Segment one HxWx3 uint8 frame (BGR, or RGB with ``rgb=True``), or the frame
        ``prepare`` made ready (``prepared``)."""
        p = self.prepare(frame, rgb) if prepared is None else prepared
        seg = p.segmenter
        if p.owner is not self:
            raise JetsegError("process(prepared=) got a frame another Segmenter prepared",
                              path=self.path, fix="prepare it with this Segmenter's prepare()")
        if p.buffers is False:
            raise JetsegError("a prepared frame went to process() twice", path=self.path,
                              fix="prepare() each frame once for each process() call")
        t1 = time.perf_counter()
        try:
            same = seg.net_size in (None, (p.frame.shape[1], p.frame.shape[0]))
            outs = seg.backend.run(p.feeds, seg.plan.fetch(same))
        finally:
            seg._pre.give_back(p.buffers)       # the model has read them: the next take's
            p.buffers, p.feeds = False, None
        infer_ms = 1000.0 * (time.perf_counter() - t1)
        res = Segmentation(seg, seg.plan, p.frame, outs)
        res.timings = {"preprocess_ms": p.ms, "inference_ms": infer_ms}
        res.latency_ms = p.ms + infer_ms
        return res

    def _route(self, size):
        """Decide, once per frame size, which Segmenter takes frames of ``size``."""
        if self.info.frame:
            raise framegraph.wrong_size(self.info, self.path, size)
        other = None
        if self.frame_graph == "auto":
            path = framegraph.find_frame_graph(self.path, size)
        else:
            path = self.frame_graph
        if path:
            opened = Segmenter(path, frame_graph=None, **self._options)
            if (opened.info.frame or {}).get("width") is not None and \
                    opened.net_size == size:
                log.info("%s frames: frame graph %s (resize, net, class map and overlay in "
                         "one graph; %s)", framegraph.size_tag(size), path,
                         opened.filter_mode)
                other = opened
            else:
                opened.close()
        if other is None and self.frame_graph is not None:      # None: the caller's choice
            log.info("%s", framegraph.cpu_path_note(self.path, self.net_size, size))
        self._routes[size] = other
        return other

    @property
    def frame_size(self):
        """(W, H) of the frames this model's graph takes whole (a frame graph), or None."""
        f = self.info.frame
        return (f["width"], f["height"]) if f else None

    def legend(self, present=None, fractions=None):
        """A legend picture: every class (or the ``present`` ids), with ``fractions`` if
        given (shares by class id)."""
        return processing.legend(self.classes, self.colors, present=present,
                                 fractions=fractions)

    def close(self):
        for other in self._routes.values():
            if other is not None:
                other.close()
        self._routes = {}
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "Segmenter({!r}, backend={}, {} classes; {})".format(
            os.path.basename(self.path), self.backend.name, len(self.classes),
            self.info.describe().split(", ", 1)[-1])


class Prepared(object):
    """A frame made ready for the model by ``owner.prepare``: the Segmenter that runs it
    (``owner``, or the frame graph it routes frames of this size to), the BGR frame, its
    feeds (in ``buffers``, which it holds until ``process`` gives them back) and the ms it
    took."""
    __slots__ = ("owner", "segmenter", "frame", "feeds", "buffers", "ms")

    def __init__(self, owner, segmenter, frame, feeds, buffers, ms):
        self.owner, self.segmenter, self.frame = owner, segmenter, frame
        self.feeds, self.buffers, self.ms = feeds, buffers, ms


def as_bgr(frame, rgb=False):
    """Accept HxW grey, HxWx1, HxWx3 and HxWx4 uint8 frames; return contiguous HxWx3 BGR."""
    if frame is None:       # what cv2.imread returns for a path it cannot read
        raise JetsegError("frame is None, not an image; cv2.imread returns None for a path "
                          "it cannot read (missing, unreadable or not an image)",
                          fix="check the image path (or the capture's read()) and pass an HxWx3 "
                              "uint8 numpy array, BGR as cv2.imread gives it")
    if not isinstance(frame, np.ndarray):
        raise JetsegError("frame is a {}, not a numpy array".format(type(frame).__name__),
                          fix="pass an HxWx3 uint8 numpy array, BGR as cv2.imread gives it")
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
