"""``jetseg build``: ONNX -> TensorRT engine on the device that will run it.

    jetseg build model.onnx --precision fp16 -o model.fp16.engine [--workspace MB]
                 [--timing-cache FILE] [--dla N] [--input-size WxH] [--plain]

``--plain`` writes the bare TensorRT plan (trtexec, DeepStream and Triton load it) with
jetseg's facts beside it in ``<engine>.json``; jetseg runs and checks both forms.
"""
from jetseg.errors import JetsegError
from jetseg.backends.tensorrt.platform import PRECISIONS


def register(subparsers, common_parent):
    b = subparsers.add_parser(
        "build", parents=[common_parent], help="build a TensorRT engine from an ONNX model",
        description="Build a TensorRT engine on the device that will run it. The engine "
                    "carries the model's metadata, the TensorRT version and the GPU it was "
                    "built for.")
    b.add_argument("model", help="the .onnx model (from jetseg export)")
    b.add_argument("--precision", choices=PRECISIONS,
                   help="fp16, fp32, or int8 for models with Q/DQ nodes (default: the "
                        "model's own precision, fp16 for fp32 models where the GPU has fast "
                        "fp16); a strongly typed TensorRT (11+) always builds the model's own "
                        "types, and the engine says which it got")
    b.add_argument("-o", "--output", help="engine file (default MODEL.<precision>.engine)")
    b.add_argument("--plain", action="store_true",
                   help="write a bare plan for trtexec/DeepStream/Triton, with the model "
                        "facts in OUTPUT.json")
    b.add_argument("--workspace", type=int, metavar="MB",
                   help="builder workspace in MB (default 1024)")
    b.add_argument("--timing-cache", metavar="FILE",
                   help="read and update this TensorRT timing cache (faster rebuilds)")
    b.add_argument("--dla", type=int, metavar="N",
                   help="run on DLA core N (Xavier/Orin NX and AGX), GPU fallback")
    b.add_argument("--input-size", help="WxH for models with a dynamic input size")
    b.set_defaults(func=cmd_build)


def cmd_build(args):
    from jetseg.backends.tensorrt.build import build_engine
    from jetseg.core.modelinfo import parse_size
    if args.workspace is not None and args.workspace <= 0:
        raise JetsegError("--workspace {} must be a positive number of MB".format(
            args.workspace), fix="e.g. --workspace 1024")
    out = build_engine(args.model, precision=args.precision, workspace_mb=args.workspace,
                       timing_cache=args.timing_cache, dla_core=args.dla, out=args.output,
                       input_size=parse_size(args.input_size), plain=args.plain)
    if not getattr(args, "quiet", False):
        print(out)
    return 0
