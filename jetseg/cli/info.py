"""``jetseg info``: what a model file holds (tensors, metadata, classes)."""


def register(sub, common):
    i = sub.add_parser("info", parents=[common], help="print what a model file holds")
    i.add_argument("model")
    i.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    i.set_defaults(func=cmd_info)


def cmd_info(args):
    from jetseg.backends import open_backend
    from jetseg.core.modelinfo import ModelInfo
    b = open_backend(args.model, args.backend)
    info = ModelInfo.from_metadata(b.metadata, source=args.model)
    info.resolve(b.inputs, b.outputs, source=args.model)
    print("model:     {}".format(args.model))
    print("backend:   {} ({})".format(b.name, ", ".join(b.providers)))
    print("inputs:    {}".format(", ".join(repr(t) for t in b.inputs)))
    print("outputs:   {}".format(", ".join(repr(t) for t in b.outputs)))
    print("jetseg:    {}".format(info.describe() if info.has_metadata else
                                 "no jetseg metadata (plain model: CPU pre/post path)"))
    if info.classes:
        print("classes:   {}".format(", ".join(info.classes)))
    for k, v in sorted(info.extra.items()):
        print("{:<10} {}".format(k + ":", v))
    return 0
