"""Engine files: jetseg's header in front of a TensorRT plan, the guard, the engine cache.

All pure Python (no TensorRT, no CUDA), so it is tested on any machine.

File format (``*.engine`` written by ``jetseg build``)::

    8 bytes   MAGIC  b"\\x89JETSEG\\n"
    4 bytes   header length N, unsigned little-endian
    N bytes   UTF-8 JSON: {"format": 1,
                           "metadata": {"jetseg.classes": "[...]", ...},  # = ONNX metadata_props
                           "tensorrt": "8.2.1.8", "gpu": "NVIDIA Tegra X1",
                           "compute_capability": [5, 3], "precision": "fp16",
                           "onnx_sha256": "...", "source": "camvid.onnx",
                           "flags": {"workspace_mb": 1024, "dla_core": null, ...},
                           "cuda": "10.2", "jetseg": "0.x", "built_at": "2026-..."}
    rest      the serialized plan, exactly as ``build_serialized_network`` returned it

The loader strips the header and hands the plan to TensorRT. A file without MAGIC is taken
as a plain plan (from trtexec or another tool): it loads, but nothing can be checked before
TensorRT tries it, and the model facts come from ``--labels`` / ``--colors``.

Guard: TensorRT plans only run on the TensorRT version and GPU model that built them, so an
engine whose header names another TensorRT release (major.minor.patch), another compute
capability or another GPU is refused with a message that says how to rebuild.

Cache (``--engine model.onnx`` / ``backend="tensorrt"`` on an ONNX): the engine lives next to
the model as ``model.<precision>.<gpu-tag>.trt<version>.engine`` (e.g.
``camvid.fp16.tegra-x1-sm53.trt8.2.1.engine``) and is rebuilt only when the ONNX's sha256,
TensorRT, the GPU or the precision changed. A read-only model folder falls back to
``$XDG_CACHE_HOME/jetseg/engines`` (``~/.cache/jetseg/engines``).
"""
import hashlib
import json
import os
import re
import struct
import time

from jetseg.errors import JetsegError, log
from jetseg.files import write_atomic

MAGIC = b"\x89JETSEG\n"
FORMAT = 1
PRECISIONS = ("fp16", "fp32", "int8")
_LEN = struct.Struct("<I")
_MAX_HEADER = 16 << 20


# ---- header ------------------------------------------------------------------------------
def make_header(metadata=None, tensorrt=None, gpu=None, compute_capability=None,
                precision=None, onnx_sha256=None, source=None, flags=None, **extra):
    h = {"format": FORMAT, "metadata": dict(metadata or {}), "tensorrt": tensorrt, "gpu": gpu,
         "compute_capability": list(compute_capability) if compute_capability else None,
         "precision": precision, "onnx_sha256": onnx_sha256, "source": source,
         "flags": dict(flags or {}),
         "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        from jetseg import __version__
        h["jetseg"] = __version__
    except ImportError:
        pass
    h.update(extra)
    return h


def pack_engine(header, plan):
    """MAGIC + length + JSON header + plan bytes."""
    blob = json.dumps(header, sort_keys=True).encode("utf-8")
    return b"".join([MAGIC, _LEN.pack(len(blob)), blob, bytes(plan)])


def split_engine(data, path="engine"):
    """(header dict or None for a plain plan, offset where the plan starts)."""
    head = bytes(data[:len(MAGIC) + _LEN.size])
    if not head.startswith(MAGIC):
        return None, 0
    if len(head) < len(MAGIC) + _LEN.size:
        raise _damaged(path, "the header is cut short")
    (n,) = _LEN.unpack(head[len(MAGIC):])
    start = len(MAGIC) + _LEN.size
    if n > _MAX_HEADER or start + n > len(data):
        raise _damaged(path, "the header length ({} bytes) runs past the file".format(n))
    try:
        header = json.loads(bytes(data[start:start + n]).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except ValueError as e:
        raise _damaged(path, "the header is not valid JSON ({})".format(e))
    if isinstance(header.get("format"), int) and header["format"] > FORMAT:
        raise JetsegError("engine header format {} is newer than this jetseg understands "
                          "({})".format(header["format"], FORMAT), path=path,
                          fix="pip install --upgrade jetseg, or rebuild with jetseg build")
    return header, start + n


def _damaged(path, why):
    return JetsegError("engine file is damaged: {}".format(why), path=path,
                       fix="copy it again or rebuild it with jetseg build MODEL.onnx")


def _read_head(f, path):
    """(bytes read, header or None) from an engine file open at its start."""
    head = f.read(len(MAGIC) + _LEN.size)
    if not head.startswith(MAGIC):
        return head, None
    if len(head) < len(MAGIC) + _LEN.size:
        raise _damaged(path, "the header is cut short")
    (n,) = _LEN.unpack(head[len(MAGIC):])
    if n > _MAX_HEADER:
        raise _damaged(path, "the header length ({} bytes) is impossible".format(n))
    blob = f.read(n)
    return head + blob, split_engine(head + blob, path)[0]


def read_header(path):
    """The header of an engine file (reads only the head), or None for a plain plan."""
    with open(str(path), "rb") as f:
        return _read_head(f, str(path))[1]


def read_engine(path):
    """(header or None, plan bytes), the plan read without copying the header along."""
    path = str(path)
    with open(path, "rb") as f:
        head, header = _read_head(f, path)
        if header is None:
            return None, head + f.read()
        plan = f.read()
    if not plan:
        raise _damaged(path, "the header is there but the TensorRT plan after it is missing")
    return header, plan


def write_engine(path, header, plan):
    """Write header + plan atomically: a reader sees the old file or the new, never half."""
    write_atomic(path, pack_engine(header, plan))
    return str(path)


# ---- guard -------------------------------------------------------------------------------
def _release(version):
    """"8.2.1.8" -> (8, 2, 1): the part of a TensorRT version an engine is tied to."""
    nums = re.findall(r"\d+", str(version or ""))
    return tuple(int(n) for n in nums[:3])


def _cc(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(".")
    return tuple(int(v) for v in value)


def compat_problems(header, here):
    """Why an engine with ``header`` cannot run ``here`` ({"tensorrt", "gpu",
    "compute_capability"}); an empty list when it can."""
    out = []
    built, now = _release(header.get("tensorrt")), _release(here.get("tensorrt"))
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
    src = (header or {}).get("source") or "MODEL.onnx"
    prec = (header or {}).get("precision") or "fp16"
    return "jetseg build {} --precision {} -o {}".format(src, prec, path)


def check_engine(header, here, path):
    """Raise JetsegError when the engine was built for another TensorRT or GPU."""
    problems = compat_problems(header or {}, here)
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
    rel = _release(version)
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
    """(True, "") when the cached engine fits; else (False, why it must be rebuilt)."""
    if not os.path.exists(engine_path):
        return False, "no cached engine yet"
    try:
        header = read_header(engine_path)
    except (JetsegError, IOError, OSError) as e:
        return False, "the cached engine is unreadable ({})".format(e)
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
    out=..., precision=...)`` (which must write atomically) only when it is stale."""
    if precision not in PRECISIONS:
        raise JetsegError("unknown precision {!r}".format(precision),
                          fix="use one of: " + ", ".join(PRECISIONS))
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


# ---- ONNX facts without the onnx package (a Jetson has TensorRT but rarely onnx) ----------
def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf, start=0, end=None):
    """Yield (field number, wire type, value) of one protobuf message; a length-delimited
    value is given as (start, end) offsets so big blobs (weights) are skipped, not copied."""
    i, end = start, len(buf) if end is None else end
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        else:
            raise ValueError("unsupported wire type {}".format(wire))
        if i > end:
            raise ValueError("field runs past the message")
        yield field, wire, value


def _text(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def _onnx_buffer(data_or_path):
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return memoryview(data_or_path)
    with open(str(data_or_path), "rb") as f:
        return memoryview(f.read())


def read_onnx_metadata(data_or_path):
    """ONNX ``metadata_props`` (ModelProto field 14) as a dict, read from the raw bytes."""
    buf = _onnx_buffer(data_or_path)
    out = {}
    try:
        for field, wire, value in _fields(buf):
            if field == 14 and wire == 2:
                key = val = None
                for f2, w2, v2 in _fields(buf, value[0], value[1]):
                    if f2 == 1 and w2 == 2:
                        key = _text(buf, v2)
                    elif f2 == 2 and w2 == 2:
                        val = _text(buf, v2)
                if key is not None:
                    out[key] = val if val is not None else ""
    except ValueError as e:
        raise JetsegError("not a readable ONNX file ({})".format(e), path=str(data_or_path)
                          if not isinstance(data_or_path, (bytes, bytearray, memoryview))
                          else None, fix="copy or export the model again")
    return out


def list_onnx_nodes(data_or_path):
    """[(node name, op type)] of the main graph (ModelProto.graph = 7, GraphProto.node = 1,
    NodeProto.name = 3, op_type = 4), for parser messages and the Q/DQ check."""
    buf = _onnx_buffer(data_or_path)
    nodes = []
    try:
        for field, wire, value in _fields(buf):
            if field == 7 and wire == 2:
                for f2, w2, v2 in _fields(buf, value[0], value[1]):
                    if f2 == 1 and w2 == 2:
                        name = op = ""
                        for f3, w3, v3 in _fields(buf, v2[0], v2[1]):
                            if f3 == 3 and w3 == 2:
                                name = _text(buf, v3)
                            elif f3 == 4 and w3 == 2:
                                op = _text(buf, v3)
                        nodes.append((name, op))
    except ValueError as e:
        raise JetsegError("not a readable ONNX file ({})".format(e), fix="copy or export the "
                          "model again")
    return nodes


def has_qdq(data_or_path):
    """True when the graph carries QuantizeLinear/DequantizeLinear (explicit INT8)."""
    return any(op in ("QuantizeLinear", "DequantizeLinear")
               for _, op in list_onnx_nodes(data_or_path))
