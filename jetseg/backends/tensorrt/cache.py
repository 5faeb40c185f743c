"""The guard (may this engine run here?) and the engine cache (build once, reuse after).

Guard: TensorRT plans only run on the TensorRT release and GPU model that built them, so an
engine whose facts (its header, or the sidecar of a plain plan) name another TensorRT
release (major.minor.patch), another compute capability or another GPU is refused with a
message that says how to rebuild.

Cache (``--engine model.onnx`` / ``backend="tensorrt"`` on an ONNX): the engine lives next to
the model as ``model.<precision>.<gpu-tag>.trt<version>.engine`` (e.g.
``camvid.fp16.tegra-x1-sm53.trt8.2.1.engine``), where precision is what the engine is
really built as, and is rebuilt only when the ONNX's sha256, TensorRT, the GPU or the
precision changed, or the cached file is damaged. A read-only model folder falls back to
``$XDG_CACHE_HOME/jetseg/engines`` (``~/.cache/jetseg/engines``).
"""
import hashlib
import os
import re

from jetseg.errors import JetsegError, log
from jetseg.backends.tensorrt import engine_file
from jetseg.backends.tensorrt.platform import check_precision, release


# ---- guard -------------------------------------------------------------------------------
def _cc(value):
    return tuple(value) if value else None


def compat_problems(header, here):
    """Why an engine with (checked) ``header`` cannot run ``here`` ({"tensorrt", "gpu",
    "compute_capability"}); an empty list when it can."""
    out = []
    built, now = release(header.get("tensorrt")), release(here.get("tensorrt"))
    if built and now and built != now:
        out.append("it was built by TensorRT {} and this is TensorRT {}".format(
            header.get("tensorrt"), here.get("tensorrt")))
    cc_b, cc_h = _cc(header.get("compute_capability")), _cc(here.get("compute_capability"))
    if cc_b and cc_h and cc_b != cc_h:
        out.append("it was built for a GPU of compute capability {}.{} ({}) and this GPU is "
                   "{}.{} ({})".format(cc_b[0], cc_b[1], header.get("gpu") or "unknown",
                                       cc_h[0], cc_h[1], here.get("gpu") or "unknown"))
    elif (header.get("gpu") and here.get("gpu") and header["gpu"] != here["gpu"]
          and not (header.get("flags") or {}).get("hardware_compatible")):
        out.append("it was built on a {} and this GPU is a {}".format(header["gpu"],
                                                                      here["gpu"]))
    return out


def rebuild_command(header, path):
    header = header or {}
    src = header.get("source") or "MODEL.onnx"
    prec = header.get("precision") or "fp16"
    plain = " --plain" if header.get("plan_sha256") else ""      # a sidecar's header
    return "jetseg build {} --precision {}{} -o {}".format(src, prec, plain, path)


def check_engine(header, here, path):
    """Raise JetsegError when the engine was built for another TensorRT or GPU (or its
    header is damaged)."""
    header = engine_file.validate_header(header, path)
    problems = compat_problems(header, here)
    if problems:
        raise JetsegError("this TensorRT engine cannot run here: " + "; ".join(problems),
                          path=path, fix="engines only run where they were built: rebuild it "
                                         "on this device with `{}`".format(
                                             rebuild_command(header, path)))


# ---- cache -------------------------------------------------------------------------------
def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def gpu_tag(name, compute_capability):
    """("NVIDIA Tegra X1", (5, 3)) -> "tegra-x1-sm53"."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name or "gpu").lower()).strip("-")
    slug = re.sub(r"^nvidia-", "", slug) or "gpu"
    cc = _cc(compute_capability) or (0, 0)
    return "{}-sm{}{}".format(slug[:40], cc[0], cc[1])


def trt_tag(version):
    rel = release(version)
    return "trt" + (".".join(str(v) for v in rel) if rel else "unknown")


def user_cache_dir(environ=None):
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jetseg", "engines")


def cache_path(onnx_path, precision, here, cache_dir=None):
    """Where the engine for ``onnx_path`` on this machine lives (see the module doc)."""
    onnx_path = os.path.abspath(str(onnx_path))
    base = os.path.splitext(os.path.basename(onnx_path))[0]
    name = "{}.{}.{}.{}.engine".format(base, precision,
                                      gpu_tag(here.get("gpu"), here.get("compute_capability")),
                                      trt_tag(here.get("tensorrt")))
    folder = os.path.dirname(onnx_path)
    if cache_dir is None and not os.access(folder, os.W_OK):
        cache_dir = user_cache_dir()
        # models with one name in different folders must not share an engine
        name = hashlib.sha256(folder.encode("utf-8")).hexdigest()[:8] + "-" + name
    return os.path.join(cache_dir or folder, name)


def engine_is_fresh(engine_path, onnx_sha256, precision, here):
    """(True, "") when the cached engine (either form) fits; else (False, why it must be
    rebuilt). A damaged file is stale, never an error."""
    if not os.path.exists(engine_path):
        return False, "no cached engine yet"
    try:
        header = engine_file.engine_facts(engine_path)[0]
    except (JetsegError, IOError, OSError) as e:
        return False, "stale: the cached engine is unreadable ({})".format(
            getattr(e, "message", e))
    if header is None:
        return False, "the cached engine has no jetseg header"
    if header.get("onnx_sha256") != onnx_sha256:
        return False, "the ONNX model changed since the engine was built"
    if header.get("precision") != precision:
        return False, "the engine was built for {}".format(header.get("precision"))
    problems = compat_problems(header, here)
    if problems:
        return False, problems[0]
    return True, ""


def ensure_engine(onnx_path, precision, here, build, cache_dir=None, rebuild=False):
    """Path of an up-to-date engine for ``onnx_path``, calling ``build(onnx_path,
    out=..., precision=...)`` (which must write atomically) only when it is stale.
    ``precision`` is the one the engine gets (platform.engine_precision)."""
    check_precision(precision)
    path = cache_path(onnx_path, precision, here, cache_dir)
    sha = sha256_file(onnx_path)
    fresh, why = (False, "rebuild requested") if rebuild else \
        engine_is_fresh(path, sha, precision, here)
    if fresh:
        log.debug("using cached engine %s", path)
        return path
    log.info("building the TensorRT engine %s (%s); the first start on a Jetson takes "
             "minutes, later starts reuse it", path, why)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        os.makedirs(d)
    build(str(onnx_path), out=path, precision=precision)
    return path
