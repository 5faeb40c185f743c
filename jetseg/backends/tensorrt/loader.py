"""Loaders: small callables that make an engine, in Polygraphy's style.

    platform facts -> engine cache / build -> engine bytes -> deserialised engine -> runner

    load = DeserializedEngine(EngineFromCache("camvid.onnx"))    # .onnx: cached build
    load = DeserializedEngine(EngineBytes("camvid.fp16.engine"))  # engine file, either form
    backend = TrtBackend(load)                                    # calls it

``EngineBytes()`` returns a ``Plan`` (bytes + the facts from its header or sidecar, checked
against this GPU and TensorRT before TensorRT sees them); ``DeserializedEngine()`` returns a
``LoadedEngine`` (the ICudaEngine, the runtime that must outlive it, the facts).
"""
import json
import os

from jetseg.errors import JetsegError, log
from jetseg.backends.tensorrt import cache, engine_file, platform as plat


class Plan(object):
    """A serialized engine and what is known about it (``header`` None: a bare plan)."""

    def __init__(self, data, header=None, path="<engine>"):
        self.data, self.header, self.path = data, header, path


class LoadedEngine(object):
    """A deserialised engine, the runtime that made it, and its facts."""

    def __init__(self, engine, runtime=None, header=None, path="<engine>"):
        self.engine, self.runtime, self.header, self.path = engine, runtime, header, path

    @property
    def metadata(self):
        """The model's metadata, with the precision the engine was really built as."""
        header = self.header or {}
        meta = dict(header.get("metadata") or {})
        if header.get("precision"):
            meta["jetseg.precision"] = json.dumps(header["precision"])
        return meta


def _facts(facts):
    return facts if facts is not None else plat.platform_facts(plat.import_tensorrt())


class EngineBytes(object):
    """Loader: an engine file (jetseg header, plain plan + sidecar, or bare plan) -> Plan,
    refused here when its facts name another TensorRT or GPU."""

    def __init__(self, path, facts=None):
        self.path, self.facts = str(path), facts

    def __call__(self):
        header, data = engine_file.read_engine(self.path)
        if header is not None:
            cache.check_engine(header, _facts(self.facts), self.path)
        else:
            log.info("%s is a plain TensorRT plan without jetseg facts: its TensorRT version "
                     "and GPU cannot be checked, and labels/colours come from --labels and "
                     "--colors", self.path)
        return Plan(data, header, self.path)


class EngineFromCache(object):
    """Loader: an .onnx -> Plan of its engine in the cache, built first when stale.

    precision   asked for (None: platform.engine_precision's default); the cache holds the
                engine under the precision it really gets
    workspace_mb, dla_core, timing_cache, tf32   for the build (see build.build_engine)
    rebuild     build even when the cached engine is up to date"""

    def __init__(self, onnx_path, precision=None, workspace_mb=None, dla_core=None,
                 timing_cache=None, rebuild=False, facts=None, cache_dir=None, tf32=True):
        self.onnx_path, self.precision, self.facts = str(onnx_path), precision, facts
        self.build_options = {"workspace_mb": workspace_mb, "dla_core": dla_core,
                              "timing_cache": timing_cache, "tf32": tf32}
        self.rebuild, self.cache_dir = rebuild, cache_dir

    def precision_here(self, trt, facts):
        from jetseg.backends import onnx_proto
        return plat.engine_precision(
            self.precision, onnx_proto.graph_precision(self.onnx_path),
            plat.strongly_typed(trt), plat.fast_precisions(facts["compute_capability"])[0])

    def __call__(self):
        from jetseg.backends.tensorrt.build import build_engine
        trt = plat.import_tensorrt()
        facts = _facts(self.facts)
        precision = self.precision_here(trt, facts)

        def build(onnx_path, out, precision):
            build_engine(onnx_path, precision=precision, out=out, facts=facts,
                         **self.build_options)
        path = cache.ensure_engine(self.onnx_path, precision, facts, build,
                                   cache_dir=self.cache_dir, rebuild=self.rebuild)
        return EngineBytes(path, facts)()


class DeserializedEngine(object):
    """Loader: Plan (or a loader of one, or bytes) -> LoadedEngine, on the DLA core the
    engine was built for (``runtime.DLA_core``, as trtexec sets it)."""

    def __init__(self, plan, trt=None):
        self.plan, self.trt = plan, trt

    def __call__(self):
        plan = self.plan() if callable(self.plan) else self.plan
        if isinstance(plan, (bytes, bytearray, memoryview)):
            plan = Plan(bytes(plan))
        trt = self.trt or plat.import_tensorrt()
        runtime = trt.Runtime(plat.trt_logger(trt))
        dla = ((plan.header or {}).get("flags") or {}).get("dla_core")
        if dla is not None:
            runtime.DLA_core = int(dla)
        engine = runtime.deserialize_cuda_engine(plan.data)
        if engine is None:
            raise JetsegError("TensorRT could not load this engine (TensorRT's messages above "
                              "say why: usually another TensorRT version or GPU built it, or "
                              "the file is damaged)", path=plan.path,
                              fix="rebuild it on this device: `{}`".format(
                                  cache.rebuild_command(plan.header, plan.path)))
        return LoadedEngine(engine, runtime, plan.header, plan.path)


BUILD_OPTIONS = ("precision", "workspace_mb", "dla_core", "timing_cache", "rebuild")


def engine_loader(path, facts=None, **build):
    """The loader for ``path``: an .onnx through the engine cache, anything else as an
    engine file (whose build options cannot change any more: a warning says so)."""
    unknown = [k for k in build if k not in BUILD_OPTIONS]
    if unknown:
        raise JetsegError("unknown build option(s): " + ", ".join(sorted(unknown)),
                          fix="options are " + ", ".join(BUILD_OPTIONS))
    if os.path.splitext(str(path))[1].lower() == ".onnx":
        return DeserializedEngine(EngineFromCache(path, facts=facts, **build))
    given = sorted(k for k, v in build.items() if v is not None and v is not False)
    if given:
        log.warning("%s is already an engine: %s apply only when building from an .onnx "
                    "(ignored)", path, ", ".join(given))
    return DeserializedEngine(EngineBytes(path, facts))
