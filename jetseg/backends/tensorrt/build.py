"""``jetseg build``: ONNX -> TensorRT engine with jetseg's facts, on the device that runs it.

    build_engine("camvid.onnx", precision="fp16", out="camvid.fp16.engine")

TensorRT 8.2 to 11 by feature detection (see DESIGN.md, "Facts that shape the TensorRT
side"): ``build_serialized_network`` (8.0+); workspace through ``set_memory_pool_limit``
(8.4+) or ``max_workspace_size``; the EXPLICIT_BATCH network flag wherever it still exists
(required by 8.x, ignored by 10, gone in 11); FP16/INT8 builder flags where they exist.
TensorRT 11 is strongly typed: the engine has the ONNX's own types, and the header, the
metadata and the cache name say the precision it really got. INT8 is explicit quantization
only: the ONNX must carry Q/DQ nodes (``jetseg export --precision int8 --calib DIR``).

The engine is written before anything touches the timing cache: a cache TensorRT refuses
or cannot hand back is a warning, never a lost build.
"""
import json
import os
import time

from jetseg.errors import JetsegError, log
from jetseg.files import write_atomic
from jetseg.backends import check_model_file, onnx_proto
from jetseg.backends.tensorrt import engine_file, platform as plat
from jetseg.backends.tensorrt.cache import sha256_file

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


def fast_modes(builder, compute_capability):
    """(fast fp16, fast int8): the builder's answer where it has one (TensorRT 11 has
    none), else the compute capability's."""
    table16, table8 = plat.fast_precisions(compute_capability)
    fast16 = getattr(builder, "platform_has_fast_fp16", None)
    fast8 = getattr(builder, "platform_has_fast_int8", None)
    return (table16 if fast16 is None else bool(fast16),
            table8 if fast8 is None else bool(fast8))


def flag_name(flag):
    """BuilderFlag.FP16 -> "FP16" (for the engine's header)."""
    return str(flag).rsplit(".", 1)[-1]


def precision_plan(trt, builder, precision, qdq, facts):
    """Builder flags (BuilderFlag members) for an engine of ``precision`` (the one it gets:
    platform.engine_precision), or JetsegError.

    int8 needs Q/DQ nodes, and a GPU with fast INT8 (the Nano has none: fp16); fp16 on a GPU
    without fast fp16 is allowed with a warning; a strongly typed TensorRT (no FP16 flag)
    takes the precision from the ONNX's own types and gets no flags."""
    cc = tuple(facts.get("compute_capability") or (0, 0))
    fast16, fast8 = fast_modes(builder, cc)
    gpu = "{} (compute capability {}.{})".format(facts.get("gpu") or "this GPU", cc[0], cc[1])
    plat.check_precision(precision)
    if precision == "int8":
        if not qdq:
            raise JetsegError("INT8 needs a quantized model (QuantizeLinear/DequantizeLinear "
                              "nodes); this ONNX has none",
                              fix="export it with calibration images (jetseg export "
                                  "--precision int8 --calib DIR ...) or build --precision "
                                  "fp16")
        if not fast8:
            raise JetsegError("{} has no fast INT8: an INT8 engine would be slower, not "
                              "faster".format(gpu), fix="build --precision fp16 (the Nano's "
                                                        "fast mode)")
    if plat.strongly_typed(trt):
        return []
    if precision == "int8":                     # fp16 for the layers outside Q/DQ pairs
        return [trt.BuilderFlag.INT8] + ([trt.BuilderFlag.FP16] if fast16 else [])
    if precision == "fp16":
        if not fast16:
            log.warning("%s has no fast FP16; fp32 may be as fast", gpu)
        return [trt.BuilderFlag.FP16]
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
    parser = trt.OnnxParser(network, logger)
    if hasattr(parser, "parse_from_file"):          # keeps external weights beside the file
        ok = parser.parse_from_file(str(onnx_path))
    else:
        with open(str(onnx_path), "rb") as f:
            ok = parser.parse(f.read())
    if ok:
        return parser
    try:
        nodes = onnx_proto.list_onnx_nodes(onnx_path)
    except JetsegError:
        nodes = []
    msgs = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        idx = error.node() if hasattr(error, "node") else -1
        name = error.node_name() if hasattr(error, "node_name") else ""
        op = error.node_operator() if hasattr(error, "node_operator") else ""
        if not name and 0 <= idx < len(nodes):
            name, op = nodes[idx][0], op or nodes[idx][1]
        where = "node {!r} ({})".format(name or "#{}".format(idx), op or "?") if idx >= 0 \
            or name else "the graph"
        msgs.append("{}: {}".format(where, error.desc()))
    raise JetsegError("TensorRT's ONNX parser rejected the model: " + "; ".join(msgs[:5]),
                      path=str(onnx_path),
                      fix="export for this device's TensorRT (`jetseg doctor` names the "
                          "--target; jetseg export --target trt8.2 for a Nano)")


def _profile(trt, builder, network, config, input_size):
    """An optimisation profile when inputs have dynamic dims: batch 1, H/W from input_size."""
    dynamic = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = [int(d) for d in tensor.shape]
        if any(d < 0 for d in shape):
            dynamic.append((tensor.name, shape))
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


def _load_timing_cache(config, path):
    """Give the builder the timing cache in ``path``; one TensorRT refuses (another version
    or GPU wrote it, or it is damaged) is replaced by an empty one, with a warning."""
    blob = b""
    if os.path.exists(path):
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except (IOError, OSError) as e:
            log.warning("cannot read the timing cache %s (%s): starting an empty one", path, e)
    if blob:
        try:
            timing_cache = config.create_timing_cache(blob)
            ok = timing_cache is not None and config.set_timing_cache(timing_cache, False)
        except Exception as e:          # TensorRT's own exception types
            log.debug("timing cache refused: %s", e)
            ok = False
        if ok:
            return
        log.warning("TensorRT cannot use the timing cache %s (another TensorRT or GPU wrote "
                    "it, or it is damaged): starting an empty one", path)
    config.set_timing_cache(config.create_timing_cache(b""), False)


def _save_timing_cache(config, path):
    """After the engine is safe on disk: keep what the build timed, or say why not."""
    try:
        timing_cache = config.get_timing_cache()
        if timing_cache is None:
            raise ValueError("the builder returned no timing cache")
        write_atomic(path, bytes(timing_cache.serialize()))
    except Exception as e:              # the engine is written; the cache is an extra
        log.warning("the engine is built but the timing cache %s was not saved: %s", path,
                    getattr(e, "message", e))


def build_engine(onnx_path, precision=None, workspace_mb=None, timing_cache=None,
                 dla_core=None, out=None, input_size=None, facts=None, plain=False,
                 tf32=True):
    """Build ``onnx_path`` into ``out`` (default ``model.<precision>.engine``); returns out.

    precision  the one asked for (None: the default of platform.engine_precision); the
               engine records the one it really got
    plain      write a bare plan (trtexec, DeepStream, Triton) with the facts in out.json
    tf32       False clears BuilderFlag.TF32 (exact fp32 for comparisons)"""
    trt = plat.import_tensorrt()
    onnx_path = check_model_file(onnx_path)
    if precision is not None:
        plat.check_precision(precision)
    onnx_sha256 = sha256_file(onnx_path)         # of the bytes parsed below, not after
    facts = facts or plat.platform_facts(trt)
    t0 = time.time()
    logger = plat.trt_logger(trt)
    builder = trt.Builder(logger)
    fast16 = fast_modes(builder, facts.get("compute_capability"))[0]
    typed = plat.strongly_typed(trt)
    precision = plat.engine_precision(precision, onnx_proto.graph_precision(onnx_path), typed,
                                      fast16)
    out = str(out or default_output(onnx_path, precision))
    batch = explicit_batch_flags(trt)
    network = builder.create_network(batch)
    config = builder.create_builder_config()
    qdq = onnx_proto.has_qdq(onnx_path)
    chosen = precision_plan(trt, builder, precision, qdq, facts)     # refuse before parsing
    if dla_core is not None:
        _use_dla(trt, builder, config, int(dla_core), precision)
    log.info("parsing %s", onnx_path)
    parser = _parse(trt, network, logger, onnx_path)
    workspace_mb = int(workspace_mb or DEFAULT_WORKSPACE_MB)
    how = set_workspace(trt, config, workspace_mb)
    for flag in chosen:
        config.set_flag(flag)
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    _profile(trt, builder, network, config, input_size)
    attach_progress(trt, config)
    if timing_cache:
        _load_timing_cache(config, timing_cache)
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
    meta = onnx_proto.read_onnx_metadata(onnx_path)     # as the ONNX has it; the runtime
    header = engine_file.make_header(                  # reports ``precision`` as built
        metadata=meta, tensorrt=facts.get("tensorrt"), gpu=facts.get("gpu"),
        compute_capability=facts.get("compute_capability"), precision=precision,
        onnx_sha256=onnx_sha256, source=os.path.basename(onnx_path),
        cuda=facts.get("cuda"),
        flags={"workspace_mb": workspace_mb, "dla_core": dla_core,
               "builder_flags": [flag_name(f) for f in chosen], "explicit_batch": bool(batch), "strongly_typed": typed, "qdq": qdq,
               "tf32": bool(tf32), "timing_cache": bool(timing_cache),
               "input_size": list(input_size or []) or None})
    engine_file.write_engine(out, header, plan, plain=plain)
    if timing_cache:
        _save_timing_cache(config, timing_cache)
    del parser
    log.info("wrote %s (%.1f MB) in %.0f s; metadata: %s", out, os.path.getsize(out) / 1e6,
             time.time() - t0, json.dumps(sorted(k[7:] for k in meta)))
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
