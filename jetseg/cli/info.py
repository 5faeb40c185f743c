"""``jetseg info``: what a model file holds (tensors, metadata, classes).

An engine file's own facts (TensorRT version, GPU, precision, model metadata) come from its
header or sidecar, so they are shown on any machine, TensorRT or not."""
import os
import re

from jetseg.backends import BACKEND_NAMES, ENGINE_EXTS
from jetseg.errors import JetsegError


def register(sub, common):
    i = sub.add_parser("info", parents=[common], help="print what a model file holds",
                       description="Print a model file's tensors, jetseg metadata (classes, "
                                   "colours, input size, normalisation, what the graph does, "
                                   "precision, measured mIoU) and, for TensorRT engines, the "
                                   "TensorRT version and GPU they were built for.")
    i.add_argument("model", help=".onnx model or TensorRT .engine/.plan")
    i.add_argument("--backend", default="auto", choices=BACKEND_NAMES,
                   help="backend that opens the file to list its tensors (default: auto)")
    i.set_defaults(func=cmd_info)


MAX_VALUE = 200         # characters of one metadata value shown; the rest is counted


def cap(text, limit=MAX_VALUE):
    """``text`` cut to ``limit`` characters, with how long it really is: a model's metadata
    can hold anything, and a 200 MB value must not flood the terminal."""
    text = str(text)
    if len(text) <= limit:
        return text
    return "{}... ({} bytes)".format(text[:limit], len(text.encode("utf-8", "replace")))


def _percent(v):
    return "{:.2f} %".format(100.0 * v) if isinstance(v, (int, float)) else cap(v)


def accuracy_lines(extra):
    """[(label, text)] that say what each mIoU figure in a model's facts is: ``miou`` was
    measured on this very file (by the export's parity check, on ``miou_split`` or the
    parity frames), ``val_miou`` is the training checkpoint's own validation figure
    (PyTorch, FP32). Takes the keys it explains out of ``extra``."""
    out = []
    parity = extra.pop("parity", None)
    frames = parity.get("frames") if isinstance(parity, dict) else None
    where = extra.pop("miou_split", None) or frames
    if "miou" in extra:
        how = ("export parity check on {}" if frames else "measured on {}").format(cap(where)) \
            if where else "what it was measured on is not recorded"
        out.append(("mIoU", "{} of this file ({})".format(_percent(extra.pop("miou")), how)))
    if "val_miou" in extra:
        out.append(("val mIoU", "{} of the training checkpoint it was exported from (PyTorch, "
                    "FP32, the training run's val split)".format(
                        _percent(extra.pop("val_miou")))))
    held = extra.pop("heldout", None)
    if isinstance(held, dict) and isinstance(held.get("folds"), dict):
        out.append(("held-out mIoU", "{} mean over folds ({}); weakest class {}".format(
            _percent(held.get("miou")), ", ".join("{} {}".format(k, _percent(v)) for k, v in
                                                  sorted(held["folds"].items())),
            held.get("weakest_class"))))
        out.append(("held-out is", cap(held.get("meaning"))))
        if held.get("recipe_differs"):
            out.append(("held-out recipe", "differs from this model's: " +
                        cap(held["recipe_differs"])))
    elif held is not None:
        out.append(("held-out", cap(held)))
    if "miou_definition" in extra:
        out.append(("mIoU is", cap(extra.pop("miou_definition"))))
    if isinstance(parity, dict) and isinstance(parity.get("agreement"), dict):
        out.append(("parity", "pixels agreeing with PyTorch: {}{}".format(", ".join(
            "{} {}".format(k, _percent(v)) for k, v in sorted(parity["agreement"].items())),
            " on " + cap(frames) if frames else "")))
    elif parity is not None:
        out.append(("parity", cap(parity)))
    return out


def dataset_text(value):
    """The ``dataset`` fact as written by jetseg train before it said the format once:
    "camvid camvid (367 images)" (format, then folder name) reads "camvid (367 images)"."""
    return re.sub(r"^(\S+) \1 ", r"\1 ", str(value))


def cmd_info(args):
    from jetseg.backends import open_backend
    from jetseg.core.modelinfo import ModelInfo
    print("model:     {}".format(args.model))
    metadata = None
    if os.path.splitext(args.model)[1].lower() in ENGINE_EXTS:
        from jetseg.backends.tensorrt.engine_file import describe_engine_file, engine_facts
        for label, text in describe_engine_file(args.model):
            print("{:<10} {}".format(label + ":", cap(text)))
        header = engine_facts(args.model)[0]
        metadata = (header or {}).get("metadata") or {}
    try:
        b = open_backend(args.model, args.backend)
    except JetsegError as e:
        if metadata is None:
            raise
        print("tensors:   not listed here ({})".format(e))   # e.g. no TensorRT on a desktop
        b = None
    else:
        metadata = b.metadata
        print("backend:   {} ({})".format(b.name, ", ".join(b.providers)))
        print("inputs:    {}".format(", ".join(repr(t) for t in b.inputs)))
        print("outputs:   {}".format(", ".join(repr(t) for t in b.outputs)))
    info = ModelInfo.from_metadata(metadata, source=args.model)
    problem = None
    if b is not None:
        try:
            info.resolve(b.inputs, b.outputs, source=args.model)
        except JetsegError as e:        # show what the file says, then what is wrong with it
            problem = e
        b.close()
    print("jetseg:    {}".format(cap(info.describe()) if info.has_metadata else
                                 "no jetseg metadata (plain model: CPU pre/post path)"))
    if info.classes:
        print("classes:   {}".format(cap(", ".join(info.classes))))
    extra = dict(info.extra)
    lines = accuracy_lines(extra)
    if "dataset" in extra:
        lines.insert(0, ("dataset", cap(dataset_text(extra.pop("dataset")))))
    lines += [(k, cap(v)) for k, v in sorted(extra.items())]
    for label, text in lines:
        print("{:<10} {}".format(label + ":", text))
    if problem is not None:
        raise problem
    return 0
