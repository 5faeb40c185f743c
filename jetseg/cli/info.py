"""``jetseg info``: what a model file holds (tensors, metadata, classes).

An engine file's own facts (TensorRT version, GPU, precision, model metadata) come from its
header or sidecar, so they are shown on any machine, TensorRT or not."""
import os

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


def cmd_info(args):
    from jetseg.backends import open_backend
    from jetseg.core.modelinfo import ModelInfo
    print("model:     {}".format(args.model))
    metadata = None
    if os.path.splitext(args.model)[1].lower() in ENGINE_EXTS:
        from jetseg.backends.tensorrt.engine_file import describe_engine_file, engine_facts
        for label, text in describe_engine_file(args.model):
            print("{:<10} {}".format(label + ":", text))
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
    if b is not None:
        info.resolve(b.inputs, b.outputs, source=args.model)
        b.close()
    print("jetseg:    {}".format(info.describe() if info.has_metadata else
                                 "no jetseg metadata (plain model: CPU pre/post path)"))
    if info.classes:
        print("classes:   {}".format(", ".join(info.classes)))
    for k, v in sorted(info.extra.items()):
        print("{:<10} {}".format(k + ":", v))
    return 0
