"""The ``build`` and ``doctor`` subcommands; ``jetseg.cli`` calls ``register``.

    jetseg build model.onnx --precision fp16 -o model.fp16.engine [--workspace MB]
                 [--timing-cache FILE] [--dla N] [--input-size WxH]
    jetseg doctor [--selftest [--model MODEL.onnx]]

Handlers raise JetsegError for anything a user can fix (the CLI prints one line, exit 2).
"""
from .errors import JetsegError


def register(subparsers, common_parent):
    b = subparsers.add_parser(
        "build", parents=[common_parent], help="build a TensorRT engine from an ONNX model",
        description="Build a TensorRT engine on the device that will run it. The engine "
                    "carries the model's metadata, the TensorRT version and the GPU it was "
                    "built for.")
    b.add_argument("model", help="the .onnx model (from jetseg export)")
    b.add_argument("--precision", default="fp16", choices=("fp16", "fp32", "int8"),
                   help="fp16 (default), fp32, or int8 for models with Q/DQ nodes")
    b.add_argument("-o", "--output", help="engine file (default MODEL.<precision>.engine)")
    b.add_argument("--workspace", type=int, metavar="MB",
                   help="builder workspace in MB (default 1024)")
    b.add_argument("--timing-cache", metavar="FILE",
                   help="read and update this TensorRT timing cache (faster rebuilds)")
    b.add_argument("--dla", type=int, metavar="N",
                   help="run on DLA core N (Xavier/Orin NX and AGX), GPU fallback")
    b.add_argument("--input-size", help="WxH for models with a dynamic input size")
    b.set_defaults(func=cmd_build)

    d = subparsers.add_parser(
        "doctor", parents=[common_parent], help="check CUDA, TensorRT, OpenCV, cameras",
        description="Print what this machine has for running models, with the fix for "
                    "anything missing. Exit code 0 when the essentials are there.")
    d.add_argument("--selftest", action="store_true",
                   help="also exercise CUDA buffers and a tiny TensorRT engine on the GPU")
    d.add_argument("--model", help="with --selftest: compare this ONNX as an fp32 engine "
                                   "against ONNX Runtime")
    d.set_defaults(func=cmd_doctor)
    return subparsers


def cmd_build(args):
    from .build import build_engine
    from .modelinfo import parse_size
    if args.workspace is not None and args.workspace <= 0:
        raise JetsegError("--workspace {} must be a positive number of MB".format(
            args.workspace), fix="e.g. --workspace 1024")
    out = build_engine(args.model, precision=args.precision, workspace_mb=args.workspace,
                       timing_cache=args.timing_cache, dla_core=args.dla, out=args.output,
                       input_size=parse_size(args.input_size))
    if not getattr(args, "quiet", False):
        print(out)
    return 0


def cmd_doctor(args):
    from .doctor import run_doctor
    if args.model and not args.selftest:
        raise JetsegError("--model is only used with --selftest", fix="add --selftest")
    return run_doctor(selftest=args.selftest, model=args.model)
