"""What a Segmenter hands back: ``Segmentation`` (one frame's result), and the ``OutputPlan``
that says which model outputs it fetched and how to read them."""
import numpy as np

from jetseg.core import processing
from jetseg.core.labels import class_fractions
from jetseg.errors import JetsegError


class OutputPlan(object):
    """Which model outputs a Segmenter fetches and how its results read them; decided once,
    when the Segmenter is made.

    names          {role: tensor name} of the roles the model gives (scores, classes, overlay,
                   confidence)
    cpu_argmax     the graph's class map cannot be used as it is (the graph has no argmax, or
                   it ignores another class than the one asked for): argmax the scores here
    graph_overlay  the graph's overlay is the one asked for: drawn from the class map in use,
                   with the Segmenter's colours and ``alpha``; frames at the net's input size
                   only (the graph draws at that size)
    has_scores     the model gives raw scores (filter mode "smooth" needs them)
    """

    def __init__(self, names, cpu_argmax, graph_overlay, alpha, smooth=False, keep_scores=False):
        self.names = dict(names)
        self.cpu_argmax = bool(cpu_argmax)
        self.graph_overlay = bool(graph_overlay) and "overlay" in self.names
        self.alpha = alpha
        self.has_scores = "scores" in self.names
        self._fetch = {True: self._plan(True, smooth, keep_scores),
                       False: self._plan(False, smooth, keep_scores)}

    def _plan(self, same_size, smooth, keep_scores):
        """The class map, or the scores when the CPU must argmax or upsample them; the graph's
        overlay where it can be used as it is; confidence when the graph has it. ONNX Runtime
        then skips the parts of the graph nobody asked for."""
        o = self.names
        want = set(["confidence", "scores"] if keep_scores else ["confidence"])
        if self.cpu_argmax or (smooth and not same_size):
            want.add("scores" if "scores" in o else "classes")
        else:
            want.add("classes" if "classes" in o else "scores")
        if same_size and self.graph_overlay:
            want.add("overlay")
        return [o[r] for r in sorted(want) if r in o]

    def fetch(self, same_size):
        """Output names for a frame the net sees at its own size (``same_size``) or resized."""
        return self._fetch[bool(same_size)]

    def overlay_usable(self, overlay, frame_shape, alpha):
        """True when the graph's ``overlay`` is the answer for a frame of ``frame_shape``
        drawn at ``alpha``."""
        return (self.graph_overlay and overlay is not None and overlay.shape == frame_shape
                and alpha == self.alpha)

    def __repr__(self):
        return "OutputPlan(fetch={}, cpu_argmax={}, graph_overlay={})".format(
            self._fetch[True], self.cpu_argmax, self.graph_overlay)


class Segmentation(object):
    """One frame's result. Heavy views (full-size classes, overlay) are made on first use.

    ``segmenter`` gives the classes, colours, filter mode and ignored class; ``plan`` says
    how to read ``outputs`` (the fetched tensors, by name).
    """

    def __init__(self, segmenter, plan, frame, outputs):
        self.segmenter = segmenter
        self.plan = plan
        self.frame = frame
        self.timings = {}
        self.latency_ms = None        # process() time; capture-to-output in a pipeline
        self.frame_id = None
        self.name = None
        self.captured_at = None
        self.scores = None            # C x h x w float32 at the net's output resolution
        self._classes_low = None
        self._graph_overlay = None
        self._graph_conf = None
        fetched = dict((role, outputs[n]) for role, n in plan.names.items() if n in outputs)
        if "scores" in fetched:
            s = fetched["scores"]
            self.scores = s[0] if s.ndim == 4 else s
        if "classes" in fetched and not plan.cpu_argmax:
            c = np.asarray(fetched["classes"])
            c = c.reshape(c.shape[-2:])
            if c.dtype.kind == "f":
                c = np.rint(c)
            self._classes_low = c.astype(np.uint8 if len(segmenter.classes) <= 256 else np.int32,
                                         copy=False)         # a frame graph's: no copy
        if "overlay" in fetched:
            o = fetched["overlay"][0]
            if o.shape[0] == 3 and o.shape[-1] != 3:
                o = o.transpose(1, 2, 0)
            if o.dtype != np.uint8:         # TensorRT 8.2 graphs: float (no uint8 I/O)
                o = processing.pixels_uint8(o)
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
            self._classes_low = processing.argmax_chw(self.scores, self.segmenter.ignore_class)
        return self._classes_low

    @property
    def classes(self):
        """HxW class ids at the frame's resolution (uint8; int32 past 256 classes)."""
        if self._classes is None:
            if self._smooth():
                self._classes = processing.argmax_hwc(self._scores_full(),
                                                      self.segmenter.ignore_class)
            else:
                self._classes = processing.resize_nearest(self.classes_lowres, self.width,
                                                          self.height)
        return self._classes

    def _scores_full(self):
        """Scores bilinearly upsampled to the frame (HxWxC), made once per result."""
        if "scores_full" not in self._cache:
            self._cache["scores_full"] = processing.resize_linear(
                np.ascontiguousarray(self.scores.transpose(1, 2, 0)), self.width, self.height)
        return self._cache["scores_full"]

    def _smooth(self, mode=None):
        """Smooth mode applies when asked for and the scores were fetched (a model without
        scores falls back to point: the Segmenter warned once when it was made)."""
        return (mode or self.segmenter.filter_mode) == "smooth" and self.scores is not None

    @property
    def confidence(self):
        """HxW softmax probability of the chosen class, or None if the model gives no scores."""
        if "confidence" not in self._cache:
            conf = self._graph_conf
            if conf is None and self.scores is not None:
                if self._smooth():
                    conf = processing.softmax_max(self._scores_full())
                else:
                    conf = processing.softmax_max(self.scores.transpose(1, 2, 0))
            if conf is not None:
                conf = processing.resize_linear(conf, self.width, self.height)
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
        if self.plan.overlay_usable(self._graph_overlay, self.frame.shape, pal.alpha):
            out = self._graph_overlay
        elif mode == "linear" and not self._full_res_classes():
            out = pal.blend_linear(self.frame, self.classes_lowres)
        else:
            out = pal.blend(self.frame, self._classes_for(mode))
        self._cache[key] = out
        return out

    def _classes_for(self, mode):
        own = self.segmenter.filter_mode
        if mode == own or (mode != "smooth" and own != "smooth"):
            return self.classes
        if self._smooth(mode):
            return processing.argmax_hwc(self._scores_full(), self.segmenter.ignore_class)
        return processing.resize_nearest(self.classes_lowres, self.width, self.height)

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
            return processing.composite(self.overlay(alpha), self.mask())
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
            if self._classes is None and not self._smooth():    # the map would be nearest-
                self._cache["counts"] = processing.nearest_counts(   # resized: count it small
                    self.classes_lowres, self.width, self.height, n)
            else:
                self._cache["counts"] = np.bincount(self.classes.ravel(), minlength=n)[:n]
        return self._cache["counts"]

    def class_fractions(self):
        """{class name: share of the frame's pixels}, every class, in class-id order."""
        return class_fractions(self.class_counts(), self.segmenter.classes)
