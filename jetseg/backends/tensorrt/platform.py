"""What this machine's TensorRT and GPU are, and what that implies.

- ``import_tensorrt`` / ``trt_logger``: the module (or a JetsegError saying how to get it)
  and the one logger TensorRT wants per process;
- ``platform_facts``: what an engine is tied to here (TensorRT release, GPU, compute
  capability, CUDA);
- precisions: the names, the one check, which are fast on a GPU, and which precision an
  engine really gets (``engine_precision``: a strongly typed TensorRT builds the ONNX's own
  types, whatever was asked);
- ``JETPACK``: L4T release -> JetPack -> TensorRT -> the ``jetseg export --target`` to use.
"""
import re

from jetseg.errors import JetsegError, log, option


def trt_fix():
    """How to get TensorRT, or do without it."""
    return ("on a Jetson TensorRT comes with JetPack: sudo apt-get install python3-libnvinfer "
            "(a virtualenv needs --system-site-packages; in Docker use an l4t-tensorrt or "
            "l4t-jetpack image); on a desktop without it run the .onnx model with "
            "{}".format(option("backend", "onnxruntime")))


PRECISIONS = ("fp16", "fp32", "int8")

# L4T release line -> (JetPack, TensorRT it ships, export target, note). R32.6.1 ships 8.0.1
# and R35.1 ships 8.4.1, whose ONNX parsers have no uint8: both take the trt8.2 export.
JETPACK = (
    ((32, 6), "4.6", "8.0.1", "trt8.2", ""),
    ((32, 7), "4.6.x", "8.2.1", "trt8.2", ""),
    ((35, 1), "5.0.2", "8.4.1", "trt8.2",
     "TensorRT 8.4's ONNX parser has no uint8: export --target trt8.2, or upgrade to "
     "JetPack 5.1 (L4T R35.2+) for trt8.5"),
    ((35, 2), "5.1.x", "8.5.2", "trt8.5", ""),
    ((36, 0), "6.0", "8.6.2", "trt8.6", ""),
    ((36, 4), "6.1/6.2", "10.3.0", "trt10", ""),
)
# TensorRT release -> export target (the ONNX features its parser takes)
TARGETS = (((8, 0), "trt8.2"), ((8, 5), "trt8.5"), ((8, 6), "trt8.6"), ((10, 0), "trt10"),
           ((11, 0), "trt11"))

# Every TensorRT name jetseg probes for (hasattr / getattr with a default) and the releases
# that have it, as the code's fallbacks assume: (first release, first release without);
# None = unbounded. tests/test_trt_bindings.py checks each claim against NVIDIA's compiled
# bindings (8.6, 10.3, 10.x, 11.x) and that the code probes no name missing here; the 8.2-8.5
# bounds come from the release notes (those bindings are not on PyPI).
OPTIONAL_API = {
    "ICudaEngine": (None, None),                        # doctor asks before using it
    "ICudaEngine.num_io_tensors": ((8, 5), None),       # named tensors
    "IExecutionContext.execute_async_v3": ((8, 5), None),
    "IExecutionContext.set_tensor_address": ((8, 5), None),
    "ICudaEngine.num_bindings": (None, (10, 0)),        # binding indices
    "IExecutionContext.execute_async_v2": (None, (10, 0)),
    "NetworkDefinitionCreationFlag": (None, None),
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH": (None, (11, 0)),
    "MemoryPoolType": ((8, 4), None),
    "IBuilderConfig.set_memory_pool_limit": ((8, 4), None),
    "IProgressMonitor": ((10, 0), None),
    "IBuilderConfig.progress_monitor": ((10, 0), None),
    "Builder.platform_has_fast_fp16": (None, (11, 0)),
    "Builder.platform_has_fast_int8": (None, (11, 0)),
    "Builder.num_DLA_cores": (None, None),
    "BuilderFlag.FP16": (None, (11, 0)),                # strongly typed from 11
    "BuilderFlag.TF32": (None, None),
    "BuilderFlag.GPU_FALLBACK": (None, None),
    "OnnxParser.parse_from_file": (None, None),
    "ParserError.node": (None, None),
    "ParserError.node_name": ((10, 0), None),
    "ParserError.node_operator": ((10, 0), None),
}

_LOGGER = []


def import_tensorrt():
    """``import tensorrt`` or a JetsegError that says how to get it."""
    try:
        import tensorrt
    except ImportError as e:
        raise JetsegError("TensorRT's Python module is not installed here ({})".format(e),
                          fix=trt_fix())
    return tensorrt


def trt_logger(trt):
    """One logger for the process (TensorRT's recommendation), warnings and up."""
    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    return _LOGGER[0]


def release(version):
    """"8.2.1.8" -> (8, 2, 1): the part of a TensorRT version an engine is tied to."""
    return tuple(int(n) for n in re.findall(r"\d+", str(version or ""))[:3])


def platform_facts(trt=None, rt=None):
    """What an engine is tied to here: {"tensorrt", "gpu", "compute_capability", "cuda",
    "integrated", "can_map_host_memory", ...} (TensorRT and CUDA both needed)."""
    from jetseg.backends import cuda
    trt = trt or import_tensorrt()
    rt = rt or cuda.runtime()
    props = rt.device_properties()
    facts = dict(props)
    facts.update({"tensorrt": getattr(trt, "__version__", "unknown"), "gpu": props["name"],
                  "cuda": cuda.version_text(rt.runtime_version())})
    return facts


# ---- precision -----------------------------------------------------------------------------
def check_precision(precision):
    if precision not in PRECISIONS:
        raise JetsegError("unknown precision {!r}".format(precision),
                          fix="use one of: " + ", ".join(PRECISIONS))
    return precision


def fast_precisions(compute_capability):
    """(fast fp16, fast int8) from the compute capability, for when no TensorRT builder can
    be asked (and TensorRT 11 has no platform_has_fast_* any more). 5.3 = Nano/TX1,
    6.2 = TX2, 7.2 = Xavier, 8.7 = Orin."""
    cc = tuple(compute_capability or (0, 0))
    fp16 = cc in ((5, 3), (6, 0), (6, 2)) or cc >= (7, 0)
    int8 = cc == (6, 1) or cc >= (7, 0)
    return fp16, int8


def strongly_typed(trt):
    """True where TensorRT takes precision from the network's own types only: BuilderFlag
    has no FP16 (TensorRT 11). TensorRT 10 offers STRONGLY_TYPED as an option, which jetseg
    leaves off so that --precision still chooses."""
    return not hasattr(trt.BuilderFlag, "FP16")


def engine_precision(requested, graph, typed, fast_fp16=True):
    """The precision an engine gets: on a strongly typed TensorRT (``typed``) the ONNX's
    own (``graph``, from onnx_proto.graph_precision); otherwise the one requested (default:
    int8 for a Q/DQ graph, fp16 for an fp16 graph or a GPU with fast fp16, else fp32), never
    below what the graph's own weights are."""
    if requested is not None:
        check_precision(requested)
    if typed:
        if requested not in (None, graph):
            log.warning("this TensorRT builds the ONNX's own types: the engine is %s, not %s "
                        "(jetseg export --precision %s makes an %s model)", graph, requested,
                        requested, requested)
        return graph
    if requested is None:
        return graph if graph != "fp32" else ("fp16" if fast_fp16 else "fp32")
    if graph == "fp16" and requested == "fp32":
        log.warning("the model's weights are fp16: the engine is fp16")
        return "fp16"
    return requested


# ---- releases and targets --------------------------------------------------------------------
def jetpack_facts(l4t):
    """For an L4T release string ("R36.4.0"): {"l4t", "jetpack", "tensorrt", "target",
    "note"}, or None for a release jetseg does not know."""
    nums = tuple(int(n) for n in re.findall(r"\d+", str(l4t or ""))[:2])
    row = None
    for since, jp, trt_version, target, note in JETPACK:
        if nums >= since and nums[:1] == since[:1]:
            row = (jp, trt_version, target, note)
    if row is None:
        return None
    return {"l4t": l4t, "jetpack": row[0], "tensorrt": row[1], "target": row[2],
            "note": row[3]}


def export_target(tensorrt_version):
    """The ``jetseg export --target`` whose ONNX this TensorRT release parses."""
    rel = release(tensorrt_version)
    out = None
    for since, target in TARGETS:
        if rel[:2] >= since:
            out = target
    return out
