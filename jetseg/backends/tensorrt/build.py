"""``jetseg build``: ONNX -> TensorRT engine with jetseg's header, on the device that runs it.

    build_engine("camvid.onnx", precision="fp16", out="camvid.fp16.engine")

TensorRT 8.2 to 10+ by feature detection (see DESIGN.md, "Facts that shape the TensorRT
side"): ``build_serialized_network`` (8.0+); workspace through ``set_memory_pool_limit``
(8.4+) or ``max_workspace_size``; the EXPLICIT_BATCH network flag wherever it still exists
(required by 8.x, ignored by 10, gone in 11); FP16/INT8 builder flags where they exist
(TensorRT 11 takes precision from the ONNX's own types: strongly typed networks). INT8 is
explicit quantization only: the ONNX must carry Q/DQ nodes (``jetseg export --int8``).
"""
import json
import os
import time

from jetseg.errors import JetsegError, log
from jetseg.files import write_atomic

PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_WORKSPACE_MB = 1024


def default_output(onnx_path, precision):
    return os.path.splitext(str(onnx_path))[0] + ".{}.engine".format(precision)


def explicit_batch_flags(trt):
    """Network creation flags: EXPLICIT_BATCH where the enum still has it (8.x needs it,
    10.x ignores it, 11.x removed it)."""
    flag = getattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "EXPLICIT_BATCH", None)
    return (1 << int(flag)) if flag is not None else 0


def set_workspace(trt, config, mb):
    """Workspace limit: set_memory_pool_limit (8.4+) or max_workspace_size (8.2)."""
    nbytes = int(mb) << 20
    if hasattr(config, "set_memory_pool_limit") and hasattr(trt, "MemoryPoolType"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, nbytes)
        return "set_memory_pool_limit"
    config.max_workspace_size = nbytes
    return "max_workspace_size"


def _builder_says(builder, attr, default):
    value = getattr(builder, attr, None)
    return default if value is None else bool(value)


def precision_plan(trt, builder, precision, qdq, facts):
    """Builder flags for ``precision`` (a list of BuilderFlag names), or JetsegError.

    Decisions: int8 needs Q/DQ nodes, and a GPU with fast INT8 (the Nano has none: fp16);
    fp16 on a GPU without fast fp16 is allowed with a warning; without an FP16/INT8 flag in
    this TensorRT (11+) the network is strongly typed and precision comes from the ONNX."""
    from jetseg.backends.tensorrt.runner import fast_precisions
    cc = tuple(facts.get("compute_capability") or (0, 0))
    table16, table8 = fast_precisions(cc)
    fast16 = _builder_says(builder, "platform_has_fast_fp16", table16)
    fast8 = _builder_says(builder, "platform_has_fast_int8", table8)
    flags_enum = getattr(trt, "BuilderFlag", None)
    has = lambda name: flags_enum is not None and hasattr(flags_enum, name)  # noqa: E731
    gpu = "{} (compute capability {}.{})".format(facts.get("gpu") or "this GPU", cc[0], cc[1])
    if precision not in PRECISIONS:
        raise JetsegError("unknown precision {!r}".format(precision),
                          fix="use one of: " + ", ".join(PRECISIONS))
    if precision == "int8":
        if not qdq:
            raise JetsegError("INT8 needs a quantized model (QuantizeLinear/DequantizeLinear "
                              "nodes); this ONNX has none",
                              fix="export it with calibration images (jetseg export --int8 "
                                  "...) or build --precision fp16")
        if not fast8:
            raise JetsegError("{} has no fast INT8: an INT8 engine would be slower, not "
                              "faster".format(gpu), fix="build --precision fp16 (the Nano's "
                                                        "fast mode)")
        flags = ["INT8"] if has("INT8") else []
        if fast16 and has("FP16"):
            flags.append("FP16")        # layers outside the Q/DQ pairs may use fp16
        return flags
    if precision == "fp16":
        if not has("FP16"):
            log.warning("this TensorRT builds strongly typed networks: the engine's precision "
                        "is the ONNX's own (export in fp16 for an fp16 engine)")
            return []
        if not fast16:
            log.warning("%s has no fast FP16; fp32 may be as fast", gpu)
        return ["FP16"]
    return []


_MONITORS = []      # TensorRT requires a progress monitor to outlive the builder objects


def attach_progress(trt, config):
    """TensorRT 10+: log the builder's top-level phases through an IProgressMonitor (older
    TensorRT has none; the build then reports only its start and end)."""
    if not (hasattr(trt, "IProgressMonitor") and hasattr(config, "progress_monitor")):
        return None

    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if not parent_phase:
                log.info("TensorRT: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name, step):
            return True             # False would cancel the build

        def phase_finish(self, phase_name):
            pass

    monitor = Progress()
    config.progress_monitor = monitor
    _MONITORS.append(monitor)
    return monitor


def _parse(trt, network, logger, onnx_path):
    from jetseg.backends.tensorrt.engine_file import list_onnx_nodes
    parser = trt.OnnxParser(network, logger)
    if hasattr(parser, "parse_from_file"):          # keeps external weights beside the file
        ok = parser.parse_from_file(str(onnx_path))
    else:
        with open(str(onnx_path), "rb") as f:
            ok = parser.parse(f.read())
    if ok:
        return parser
    try:
        nodes = list_onnx_nodes(onnx_path)
    except JetsegError:
        nodes = []
    msgs = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        idx = e.node() if hasattr(e, "node") else -1
        name = e.node_name() if hasattr(e, "node_name") else ""
        op = e.node_operator() if hasattr(e, "node_operator") else ""
        if not name and 0 <= idx < len(nodes):
            name, op = nodes[idx][0], op or nodes[idx][1]
        where = "node {!r} ({})".format(name or "#{}".format(idx), op or "?") if idx >= 0 \
            or name else "the graph"
        msgs.append("{}: {}".format(where, e.desc()))
    raise JetsegError("TensorRT's ONNX parser rejected the model: " + "; ".join(msgs[:5]),
                      path=str(onnx_path),
                      fix="export for this device's TensorRT (jetseg export --target trt8.2 "
                          "for a Nano: opset 13, float I/O)")


def _profile(trt, builder, network, config, input_size):
    """An optimisation profile when inputs have dynamic dims: batch 1, H/W from input_size."""
    dynamic = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = [int(d) for d in t.shape]
        if any(d < 0 for d in shape):
            dynamic.append((t.name, shape))
    if not dynamic:
        return None
    profile = builder.create_optimization_profile()
    for name, shape in dynamic:
        fixed = list(shape)
        if len(fixed) == 4 and fixed[0] < 0:
            fixed[0] = 1
        if any(d < 0 for d in fixed):
            if not input_size or len(fixed) != 4:
                raise JetsegError("input {} has dynamic size {}".format(name, shape),
                                  fix="pass --input-size WxH (or export with a fixed size)")
            w, h = input_size
            hw = (1, 2) if fixed[3] in (1, 3) and fixed[1] not in (1, 3) else (2, 3)
            fixed[hw[0]], fixed[hw[1]] = h, w
            fixed = [d if d >= 0 else 3 for d in fixed]
        profile.set_shape(name, fixed, fixed, fixed)
    config.add_optimization_profile(profile)
    return profile


def build_engine(onnx_path, precision="fp16", workspace_mb=None, timing_cache=None,
                 dla_core=None, out=None, input_size=None, facts=None):
    """Build ``onnx_path`` into ``out`` (default ``model.<precision>.engine``); returns out."""
    from jetseg.backends.tensorrt import engine_file as eng
    from jetseg.backends import check_model_file
    from jetseg.backends.tensorrt.runner import import_tensorrt, platform_facts, trt_logger
    trt = import_tensorrt()
    onnx_path = check_model_file(onnx_path)
    if precision not in PRECISIONS:
        raise JetsegError("unknown precision {!r}".format(precision),
                          fix="use one of: " + ", ".join(PRECISIONS))
    out = str(out or default_output(onnx_path, precision))
    onnx_sha256 = eng.sha256_file(onnx_path)     # of the bytes parsed below, not after
    facts = facts or platform_facts(trt)
    t0 = time.time()
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    flags = explicit_batch_flags(trt)
    network = builder.create_network(flags)
    config = builder.create_builder_config()
    qdq = eng.has_qdq(onnx_path)
    chosen = precision_plan(trt, builder, precision, qdq, facts)     # refuse before parsing
    if dla_core is not None:
        _use_dla(trt, builder, config, int(dla_core), precision)
    log.info("parsing %s", onnx_path)
    parser = _parse(trt, network, logger, onnx_path)
    workspace_mb = int(workspace_mb or DEFAULT_WORKSPACE_MB)
    how = set_workspace(trt, config, workspace_mb)
    for name in chosen:
        config.set_flag(getattr(trt.BuilderFlag, name))
    _profile(trt, builder, network, config, input_size)
    attach_progress(trt, config)
    cache = None
    if timing_cache:
        blob = b""
        if os.path.exists(timing_cache):
            with open(timing_cache, "rb") as f:
                blob = f.read()
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
    log.info("building a %s engine for %s (compute %s) with TensorRT %s: this takes a few "
             "minutes on a Jetson (workspace %d MB via %s)", precision, facts.get("gpu"),
             ".".join(str(c) for c in facts.get("compute_capability") or ()),
             facts.get("tensorrt"), workspace_mb, how)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise JetsegError("TensorRT could not build the engine (its messages above say why)",
                          path=onnx_path, fix="try a larger --workspace, --precision fp32, or "
                                              "an export for this TensorRT (jetseg export "
                                              "--target ...)")
    if timing_cache:
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    meta = eng.read_onnx_metadata(onnx_path)
    header = eng.make_header(
        metadata=meta, tensorrt=facts.get("tensorrt"), gpu=facts.get("gpu"),
        compute_capability=facts.get("compute_capability"), precision=precision,
        onnx_sha256=onnx_sha256, source=os.path.basename(onnx_path),
        cuda=facts.get("cuda"),
        flags={"workspace_mb": workspace_mb, "dla_core": dla_core, "builder_flags": chosen,
               "explicit_batch": bool(flags), "qdq": qdq,
               "timing_cache": bool(timing_cache), "input_size": list(input_size or []) or
               None})
    eng.write_engine(out, header, plan)
    del parser
    log.info("wrote %s (%.1f MB) in %.0f s; metadata: %s", out, os.path.getsize(out) / 1e6,
             time.time() - t0, json.dumps(sorted(k[7:] for k in meta)) if meta else "none")
    return out


def _use_dla(trt, builder, config, core, precision):
    n = int(getattr(builder, "num_DLA_cores", 0) or 0)
    if n == 0:
        raise JetsegError("this device has no DLA (Xavier and Orin NX/AGX have them; the Nano "
                          "and Orin Nano do not)", fix="leave --dla out")
    if not 0 <= core < n:
        raise JetsegError("--dla {} but this device has DLA cores 0..{}".format(core, n - 1),
                          fix="pass --dla 0" + (" or --dla 1" if n > 1 else ""))
    if precision == "fp32":
        raise JetsegError("DLA runs fp16 or int8 only", fix="add --precision fp16")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    if hasattr(trt.BuilderFlag, "GPU_FALLBACK"):
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)   # layers DLA cannot run go to the GPU
    log.info("placing layers on DLA core %d (GPU fallback for the rest)", core)
