"""Model facts that travel inside the model file.

jetseg writes them into ONNX ``metadata_props`` (and, later, engine headers) as string
pairs under the ``jetseg.`` prefix, values JSON-encoded:

    jetseg.schema          1
    jetseg.classes         ["Sky", "Building", ...]
    jetseg.colors          [[128,128,128], [128,0,0,255], ...]   (4th value = explicit alpha)
    jetseg.input           {"name": "image", "layout": "NHWC", "dtype": "uint8",
                            "width": 480, "height": 360, "channels": "BGR"}
    jetseg.normalize       {"order": "RGB", "mean": [...], "std": [...]}   (0..1 pixel scale)
    jetseg.graph           {"preprocess": true, "upsample": true, "argmax": true,
                            "overlay": true, "confidence": false,
                            "ignore_class": 11, "alpha": 150}
    jetseg.outputs         {"scores": "scores", "classes": "classes", "overlay": "overlay"}
    jetseg.frame           {"width": 1280, "height": 720, "net_width": 320, "net_height": 240,
                            "filter": "linear", "downscale": {...}}   (frame graphs only)
    jetseg.precision       "fp32" | "fp16" | "int8"
    jetseg.arch, jetseg.dataset, jetseg.miou, jetseg.target, jetseg.producer   (informational)

``input`` describes the graph's input tensor. With ``preprocess`` the graph takes raw
pixels (``channels`` order, 0..255) and does cast, scale, mean/std and transpose itself;
without it jetseg's CPU path feeds what ``normalize`` describes. A plain ONNX from
elsewhere has none of these keys: the facts come from its tensor shapes and from flags.

``frame`` marks a frame graph (jetseg export --frame-size): its input is the camera frame at
``width`` x ``height`` (the same as ``input``'s), shrunk inside the graph to the net's
``net_width`` x ``net_height``, and its outputs are at the frame's size, brought there by
``filter`` (point, linear or smooth).
"""
import json

from jetseg.errors import JetsegError, option

PREFIX = "jetseg."
SCHEMA = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAPH_STEPS = ("preprocess", "upsample", "argmax", "overlay", "confidence")
OUTPUT_ROLES = ("scores", "classes", "overlay", "confidence")
INFO_KEYS = ("arch", "dataset", "miou", "target", "producer", "trained_on", "precision")


class TensorDesc(object):
    """Name, shape (ints, or None / strings for dynamic dims) and numpy dtype name."""

    def __init__(self, name, shape, dtype):
        self.name = name
        self.shape = list(shape) if shape is not None else None
        self.dtype = dtype

    def dim(self, i):
        if self.shape is None or len(self.shape) <= abs(i):
            return None
        d = self.shape[i]
        return d if isinstance(d, int) and d > 0 else None

    @property
    def shape_text(self):
        """The shape as a user reads it: ``[1, 3, ?, ?]`` (a dynamic dim is its name, or
        ``?``), ``[?]`` when not even the rank is known."""
        if self.shape is None:
            return "[?]"
        return "[{}]".format(", ".join(_dim_text(d) for d in self.shape))

    def __repr__(self):
        return "{}{} {}".format(self.name, self.shape_text, self.dtype)


class ModelInfo(object):
    """Everything the runtime needs to know about a model, resolved from file + flags."""

    def __init__(self):
        self.classes = None
        self.colors = None
        self.input_name = None
        self.input_layout = "NCHW"
        self.input_dtype = "float32"
        self.width = None
        self.height = None
        self.channels = "BGR"           # channel order of the graph input when preprocess
        self.norm_order = "RGB"         # channel order the network was trained on
        self.mean = IMAGENET_MEAN
        self.std = IMAGENET_STD
        self.graph = dict((k, False) for k in GRAPH_STEPS)
        self.graph["ignore_class"] = None
        self.graph["alpha"] = None
        self.outputs = {}
        self.frame = None               # frame graphs: {"width", "height", "net_width", ...}
        self.precision = "fp32"
        self.extra = {}                 # arch, dataset, miou ... (informational)
        self.has_metadata = False

    # ---- (de)serialisation -------------------------------------------------------------
    def to_metadata(self):
        meta = {
            "schema": SCHEMA,
            "classes": list(self.classes or []),
            "colors": [list(c) for c in (self.colors or [])],
            "input": {"name": self.input_name, "layout": self.input_layout,
                      "dtype": self.input_dtype, "width": self.width, "height": self.height,
                      "channels": self.channels},
            "normalize": {"order": self.norm_order, "mean": list(self.mean),
                          "std": list(self.std)},
            "graph": dict(self.graph),
            "outputs": dict(self.outputs),
            "precision": self.precision,
        }
        if self.frame:
            meta["frame"] = dict(self.frame)
        for k, v in self.extra.items():
            meta.setdefault(k, v)
        return dict((PREFIX + k, json.dumps(v)) for k, v in meta.items())

    @classmethod
    def from_metadata(cls, props, source="model"):
        """Build from a ``{key: str}`` map (ONNX metadata_props); unknown keys are kept."""
        info = cls()
        vals = {}
        for k, v in (props or {}).items():
            if not k.startswith(PREFIX):
                continue
            try:
                vals[k[len(PREFIX):]] = json.loads(v)
            except ValueError:
                vals[k[len(PREFIX):]] = v
        if not vals:
            return info
        info.has_metadata = True
        schema = vals.pop("schema", SCHEMA)
        if isinstance(schema, int) and schema > SCHEMA:
            raise JetsegError("model metadata schema {} is newer than this jetseg understands "
                              "({})".format(schema, SCHEMA), path=source,
                              fix="pip install --upgrade jetseg")
        try:
            if vals.get("classes"):
                info.classes = [str(c) for c in vals.pop("classes")]
            if vals.get("colors"):
                info.colors = [tuple(int(x) for x in c) for c in vals.pop("colors")]
            inp = vals.pop("input", None) or {}
            info.input_name = inp.get("name")
            info.input_layout = inp.get("layout", info.input_layout)
            info.input_dtype = inp.get("dtype", info.input_dtype)
            info.width = inp.get("width")
            info.height = inp.get("height")
            info.channels = inp.get("channels", info.channels)
            norm = vals.pop("normalize", None) or {}
            info.norm_order = norm.get("order", info.norm_order)
            info.mean = tuple(float(x) for x in norm.get("mean", info.mean))
            info.std = tuple(float(x) for x in norm.get("std", info.std))
            info.graph.update(vals.pop("graph", None) or {})
            info.outputs = dict(vals.pop("outputs", None) or {})
            info.precision = vals.pop("precision", info.precision)
            info.frame = _frame_facts(vals.pop("frame", None))
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            raise JetsegError("model metadata is malformed ({})".format(e), path=source,
                              fix="re-export the model with jetseg export")
        vals.pop("classes", None)
        vals.pop("colors", None)
        info.extra = vals
        return info

    # ---- resolution against the real tensors ------------------------------------------
    def resolve(self, inputs, outputs, source="model", input_blob=None, output_blob=None,
                input_size=None):
        """Fill what metadata left open from the tensors themselves; check it all fits."""
        names = [t.name for t in inputs]
        if input_blob:
            if input_blob not in names:
                raise JetsegError("model has no input named {!r} (it has {})".format(
                    input_blob, ", ".join(names)), path=source,
                    fix="pass {} with one of those names".format(option("input_blob")))
            self.input_name = input_blob
        elif self.input_name not in names:
            if len(inputs) != 1:
                raise JetsegError("model has {} inputs ({}); jetseg needs one image "
                                  "input".format(len(inputs), ", ".join(names)), path=source,
                                  fix="pass {}".format(option("input_blob", "NAME")))
            self.input_name = names[0]
        inp = inputs[names.index(self.input_name)]
        self.input_dtype = inp.dtype
        if inp.shape is None or len(inp.shape) != 4:
            raise JetsegError("input {!r} has shape {}; an image model takes 4-D "
                              "[N,C,H,W] or [N,H,W,C]".format(inp.name, inp.shape_text),
                              path=source,
                              fix="pass {} with the image input".format(option("input_blob")))
        if not self.has_metadata:
            if inp.dim(3) in (1, 3) and inp.dim(1) not in (1, 3):
                self.input_layout = "NHWC"
            elif inp.dim(1) in (3, None):
                self.input_layout = "NCHW"
        h_ax, w_ax = (1, 2) if self.input_layout == "NHWC" else (2, 3)
        fixed = (inp.dim(w_ax), inp.dim(h_ax))
        if self.has_metadata and self.width and self.height and all(fixed) and \
                (self.width, self.height) != fixed:
            raise JetsegError("metadata jetseg.input says {}x{} but the graph's input {!r} is "
                              "{}x{}".format(self.width, self.height, inp.name, *fixed),
                              path=source, fix="re-export the model with jetseg export")
        if input_size:
            self.width, self.height = input_size
        if inp.dim(w_ax) and inp.dim(h_ax):
            if input_size and (inp.dim(w_ax), inp.dim(h_ax)) != tuple(input_size):
                raise JetsegError("{} does not match the model's fixed input {}x{}".format(
                    option("input_size", "{}x{}".format(*input_size)), inp.dim(w_ax),
                    inp.dim(h_ax)), path=source,
                    fix="leave {} out for this model".format(option("input_size")))
            self.width, self.height = inp.dim(w_ax), inp.dim(h_ax)

        by_name = dict((t.name, t) for t in outputs)
        if output_blob:
            if output_blob not in by_name:
                raise JetsegError("model has no output named {!r} (it has {})".format(
                    output_blob, ", ".join(by_name)), path=source,
                    fix="pass {} with one of those names".format(option("output_blob")))
            self.outputs = {"scores": output_blob}
            for k in ("argmax", "overlay", "confidence", "upsample"):
                self.graph[k] = False
        self.outputs = dict((r, n) for r, n in self.outputs.items() if r in OUTPUT_ROLES)
        for role, name in self.outputs.items():
            if name not in by_name:
                raise JetsegError("metadata names output {!r} for {} but the graph has no such "
                                  "tensor".format(name, role), path=source,
                                  fix="re-export the model with jetseg export")
        if not self.outputs:
            out = outputs[0]
            nd = len(out.shape or [])
            if nd == 4 and out.dtype.startswith("float"):
                self.outputs = {"scores": out.name}
            elif nd in (2, 3) and not out.dtype.startswith("float"):
                self.outputs = {"classes": out.name}
                self.graph["argmax"] = True
            else:
                raise JetsegError(
                    "output {!r} has shape {} ({}); a segmentation model outputs per-class "
                    "scores [1, classes, H, W] (or a class map [1, H, W])".format(
                        out.name, out.shape_text, out.dtype), path=source,
                    fix="export a segmentation model, or pass {} with the score map".format(
                        option("output_blob")))
        if "scores" in self.outputs:
            t = by_name[self.outputs["scores"]]
            if len(t.shape or []) != 4 or not t.dtype.startswith("float"):
                raise JetsegError(
                    "output {!r} has shape {} ({}); scores must be float [1, classes, H, W]"
                    .format(t.name, t.shape_text, t.dtype), path=source,
                    fix="pass {} with the score map".format(option("output_blob")))
            n = t.dim(1)
            if n is not None and n < 2:
                raise JetsegError("output {!r} has {} channel(s); a segmentation map needs at "
                                  "least 2 classes".format(t.name, n), path=source,
                                  fix="pass {} with the score map".format(
                                      option("output_blob")))
            if n is not None and self.classes and len(self.classes) != n:
                raise JetsegError("metadata jetseg.classes lists {} classes but output {!r} has "
                                  "{}".format(len(self.classes), t.name, n), path=source,
                                  fix="re-export the model with its {} class names".format(n))
        self._check_class_facts(by_name.get(self.outputs.get("classes")), source)
        return self

    def _check_class_facts(self, class_map, source):
        """Metadata class names and colours agree with each other and with a uint8 class
        map (which cannot hold more than 256 classes); a wrong count is refused here, before
        it costs seconds a frame."""
        n = len(self.classes or [])
        if n and self.colors and len(self.colors) != n:
            raise JetsegError("metadata jetseg.colors has {} colours for the {} classes of "
                              "jetseg.classes".format(len(self.colors), n), path=source,
                              fix="re-export the model with one colour per class")
        if n > 256 and class_map is not None and class_map.dtype == "uint8":
            raise JetsegError("metadata jetseg.classes lists {} classes but the graph's class "
                              "map {!r} is uint8 (256 at most)".format(n, class_map.name),
                              path=source, fix="re-export the model with its own class names")

    @property
    def num_classes(self):
        return len(self.classes) if self.classes else None

    def describe(self):
        steps = [k for k in GRAPH_STEPS if self.graph.get(k)]
        text = ("{}, input {} {} {} ({}), graph does: {}, precision {}".format(
            "{} classes".format(self.num_classes) if self.num_classes else "no class names",
            self.input_name or "?", "{}x{}".format(self.width, self.height)
            if self.width and self.height else "of any size", self.input_layout,
            self.input_dtype, ", ".join(steps) or "nothing (CPU pre/post)", self.precision))
        if self.frame:
            text += ", frame graph: {}x{} frames -> net {}x{} -> {} at the frame's size".format(
                self.frame["width"], self.frame["height"], self.frame["net_width"],
                self.frame["net_height"], self.frame["filter"])
        return text


def _dim_text(d):
    if isinstance(d, str) and d:
        return d
    return str(d) if isinstance(d, int) and d >= 0 else "?"


def _frame_facts(value):
    """``jetseg.frame`` checked: sizes as ints, a known filter; None when absent."""
    if value is None:
        return None
    frame = dict(value)
    for k in ("width", "height", "net_width", "net_height"):
        frame[k] = int(frame[k])
        if frame[k] <= 0:
            raise ValueError("frame {} is {}".format(k, frame[k]))
    if frame.get("filter") not in ("point", "linear", "smooth"):
        raise ValueError("frame filter {!r}".format(frame.get("filter")))
    return frame


def parse_size(text):
    """``"480x360"`` (W x H, torchvision/jetson-inference order) -> (480, 360)."""
    if text is None or isinstance(text, (tuple, list)):
        return tuple(text) if text else None
    try:
        w, h = [int(v) for v in str(text).lower().replace(",", "x").split("x")]
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise JetsegError("size {!r} is not WIDTHxHEIGHT".format(text), fix="write e.g. 480x360")
    return w, h


def parse_triple(text, what):
    if text is None or isinstance(text, (tuple, list)):
        return tuple(float(v) for v in text) if text else None
    try:
        vals = tuple(float(v) for v in str(text).replace(",", " ").split())
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise JetsegError("{} needs three numbers".format(option(what, text)),
                          fix="write e.g. {} (0..1 pixel scale, RGB)".format(
                              option(what, "0.485,0.456,0.406")))
    return vals
