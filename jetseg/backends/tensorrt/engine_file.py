"""Engine files: a TensorRT plan with jetseg's facts, in one of two forms.

Pure Python (no TensorRT, no CUDA), so headers are read and checked on any machine.

``jetseg`` form (``jetseg build``, the engine cache)::

    8 bytes   MAGIC  b"\\x89JETSEG\\n"
    4 bytes   header length N, unsigned little-endian
    N bytes   UTF-8 JSON header (below)
    rest      the serialized plan, exactly as ``build_serialized_network`` returned it

``plain`` form (``jetseg build --plain``): the bare plan, which trtexec, DeepStream and
Triton load, with the header as JSON beside it in ``<engine>.json``. A plan without magic
and without a sidecar loads too, but nothing can be checked before TensorRT tries it.

The header::

    {"format": 1, "metadata": {"jetseg.classes": "[...]", ...},   # = ONNX metadata_props
     "tensorrt": "8.2.1.8", "gpu": "NVIDIA Tegra X1", "compute_capability": [5, 3],
     "precision": "fp16",          # what the engine was built as (see platform.py)
     "onnx_sha256": "...", "source": "camvid.onnx", "cuda": "10.2",
     "flags": {"workspace_mb": 1024, "dla_core": null, ...},
     "plan_size": 1234567, "plan_sha256": "..." (sidecar only), "jetseg": "0.x",
     "built_at": "2026-..."}

Every header read is checked field by field (``validate_header``): a damaged one is a
JetsegError naming the file, never a traceback, and the engine cache rebuilds it.
"""
import hashlib
import json
import os
import struct
import time

from jetseg.errors import JetsegError
from jetseg.files import write_atomic
from jetseg.backends.tensorrt.platform import PRECISIONS

MAGIC = b"\x89JETSEG\n"
FORMAT = 1
_LEN = struct.Struct("<I")
_MAX_HEADER = 16 << 20
# the smallest plan TensorRT writes is kilobytes (it carries its own header and the
# layer/tactic tables); fewer bytes than this cannot be an engine
MIN_PLAN_BYTES = 64
_TEXT_FIELDS = ("tensorrt", "gpu", "source", "onnx_sha256", "cuda", "jetseg", "built_at",
                "plan_sha256")


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


def _damaged(path, why):
    return JetsegError("engine file is damaged: {}".format(why), path=path,
                       fix="copy it again or rebuild it with jetseg build MODEL.onnx")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def validate_header(header, path="engine"):
    """``header`` with its fields checked (compute_capability normalised to a list), or
    JetsegError: damaged, or written by a newer jetseg."""
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a JSON object")
    fmt = header.get("format")
    if not _is_int(fmt) or fmt < 1:
        raise _damaged(path, "the header format is {!r}, not a version number".format(fmt))
    if fmt > FORMAT:
        raise JetsegError("engine header format {} is newer than this jetseg understands "
                          "({})".format(fmt, FORMAT), path=path,
                          fix="pip install --upgrade jetseg, or rebuild with jetseg build")
    meta = header.get("metadata")
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        raise _damaged(path, "its metadata is not a map of strings")
    for key in _TEXT_FIELDS:
        if header.get(key) is not None and not isinstance(header[key], str):
            raise _damaged(path, "{} is {!r}, not text".format(key, header[key]))
    if header.get("precision") not in (None,) + PRECISIONS:
        raise _damaged(path, "unknown precision {!r}".format(header.get("precision")))
    if header.get("flags") is not None and not isinstance(header["flags"], dict):
        raise _damaged(path, "its flags are not a JSON object")
    size = header.get("plan_size")
    if size is not None and not (_is_int(size) and size >= 0):
        raise _damaged(path, "plan_size is {!r}".format(size))
    cc = header.get("compute_capability")
    if cc is not None:
        if isinstance(cc, str) and cc.count(".") == 1:
            cc = cc.split(".")
            cc = [int(c) for c in cc] if all(c.isdigit() for c in cc) else cc
        if not (isinstance(cc, (list, tuple)) and len(cc) == 2 and all(_is_int(c) for c in cc)):
            raise _damaged(path, "compute_capability is {!r}, not [major, minor]".format(
                header["compute_capability"]))
        header = dict(header, compute_capability=list(cc))
    return header


def _decode(blob, path):
    try:
        header = json.loads(bytes(blob).decode("utf-8"))
    except RecursionError:
        raise _damaged(path, "the header is not valid JSON (nested too deeply to read)")
    except ValueError as e:
        raise _damaged(path, "the header is not valid JSON ({})".format(str(e)[:100]))
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a JSON object")
    return header


def parse_header(blob, path="engine"):
    """JSON bytes -> checked header (any decoding trouble is a damaged file)."""
    return validate_header(_decode(blob, path), path)


def pack_engine(header, plan):
    """MAGIC + length + JSON header (with the plan's size) + plan bytes."""
    header = dict(header, plan_size=len(plan))
    blob = json.dumps(header, sort_keys=True).encode("utf-8")
    return b"".join([MAGIC, _LEN.pack(len(blob)), blob, bytes(plan)])


def _head_length(head, path):
    if len(head) < len(MAGIC) + _LEN.size:
        raise _damaged(path, "the header is cut short")
    (n,) = _LEN.unpack(head[len(MAGIC):len(MAGIC) + _LEN.size])
    if n > _MAX_HEADER:
        raise _damaged(path, "the header length ({} bytes) is impossible".format(n))
    return n


def split_engine(data, path="engine"):
    """(checked header or None for a plain plan, offset where the plan starts)."""
    head = bytes(data[:len(MAGIC) + _LEN.size])
    if not head.startswith(MAGIC):
        return None, 0
    n = _head_length(head, path)
    start = len(MAGIC) + _LEN.size
    if start + n > len(data):
        raise _damaged(path, "the header length ({} bytes) runs past the file".format(n))
    return parse_header(data[start:start + n], path), start + n


def _read_head(f, path):
    """(bytes read, decoded but unchecked header or None) from a file open at its start."""
    head = f.read(len(MAGIC) + _LEN.size)
    if not head.startswith(MAGIC):
        return head, None
    n = _head_length(head, path)
    blob = f.read(n)
    if len(blob) < n:
        raise _damaged(path, "the header length ({} bytes) runs past the file".format(n))
    return head + blob, _decode(blob, path)


def sidecar_path(path):
    """Where a plain plan's facts live: ``model.engine`` -> ``model.engine.json``."""
    return str(path) + ".json"


def _read_sidecar(path):
    """The decoded (unchecked) header beside a plain plan, or None when there is none."""
    side = sidecar_path(path)
    if not os.path.exists(side):
        return None
    with open(side, "rb") as f:
        return _decode(f.read(), side)


def _checked(header, size, path):
    """``header`` checked, and its plan present, of the size it names and big enough to
    be a plan; else a damaged-file JetsegError."""
    if size == 0:
        raise _damaged(path, "the header is there but the TensorRT plan after it is missing")
    header = validate_header(header, path)
    want = header.get("plan_size")
    if want is not None and want != size:
        raise _damaged(path, "the plan is {} bytes and its header says {}".format(size, want))
    if size < MIN_PLAN_BYTES:
        raise _damaged(path, "a {}-byte plan cannot be a TensorRT engine".format(size))
    return header


def engine_facts(path):
    """(header or None, form, plan size) of an engine file without reading its plan;
    form is "jetseg", "sidecar" or "plain". Damage is a JetsegError."""
    path = str(path)
    with open(path, "rb") as f:
        head, header = _read_head(f, path)
        total = os.fstat(f.fileno()).st_size
    if header is not None:
        size = total - len(head)
        return _checked(header, size, path), "jetseg", size
    header = _read_sidecar(path)
    if header is not None:
        return _checked(header, total, sidecar_path(path)), "sidecar", total
    return None, "plain", total


def read_engine(path):
    """(header or None, plan bytes): the header from the file or its sidecar (checked to
    describe this very plan), the plan without the header."""
    path = str(path)
    with open(path, "rb") as f:
        head, header = _read_head(f, path)
        if header is None:
            plan = head + f.read()
        else:
            plan = f.read()
    if header is not None:
        return _checked(header, len(plan), path), plan
    header = _read_sidecar(path)
    if header is not None:
        side = sidecar_path(path)
        header = _checked(header, len(plan), side)
        sha = header.get("plan_sha256")
        if sha and sha != hashlib.sha256(plan).hexdigest():
            raise JetsegError("{} describes another plan than {} (the plan was replaced after "
                              "it was written)".format(side, path), path=side,
                              fix="rebuild with jetseg build --plain, or delete the .json to "
                                  "load the plan unchecked")
    return header, plan


def read_header(path):
    """The header of an engine file (jetseg form or sidecar), or None for a bare plan."""
    return engine_facts(path)[0]


def write_engine(path, header, plan, plain=False):
    """Write the engine atomically: a reader sees the old file or the new, never half.
    ``plain``: the bare plan, with the header as ``<path>.json`` (written after the plan;
    a sidecar left from an older plan is recognised by size and sha256)."""
    path = str(path)
    if not plain:
        write_atomic(path, pack_engine(header, plan))
        return path
    plan = bytes(plan)
    side = dict(header, plan_size=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    write_atomic(path, plan)
    write_atomic(sidecar_path(path), json.dumps(side, sort_keys=True, indent=1).encode("utf-8"))
    return path


def describe_engine_file(path):
    """[(label, text)] of what an engine file says about itself, for ``jetseg info``;
    needs neither TensorRT nor a GPU."""
    from jetseg.backends import check_model_file
    header, form, size = engine_facts(check_model_file(path))
    forms = {"jetseg": "jetseg engine (header + TensorRT plan)",
             "sidecar": "plain TensorRT plan with facts in " + os.path.basename(
                 sidecar_path(path)),
             "plain": "plain TensorRT plan without jetseg facts (labels/colours from "
                      "--labels/--colors; TensorRT version and GPU cannot be checked)"}
    out = [("engine", forms[form]), ("plan", "{:.1f} MB".format(size / 1e6))]
    if header is None:
        return out
    cc = header.get("compute_capability")
    out += [("tensorrt", header.get("tensorrt") or "?"),
            ("gpu", "{}{}".format(header.get("gpu") or "?", " (compute capability {}.{})"
                                  .format(cc[0], cc[1]) if cc else "")),
            ("precision", header.get("precision") or "?"),
            ("cuda", header.get("cuda") or "?"),
            ("source", header.get("source") or "?"),
            ("built", "{} by jetseg {}".format(header.get("built_at") or "?",
                                               header.get("jetseg") or "?"))]
    flags = dict((k, v) for k, v in sorted((header.get("flags") or {}).items())
                 if v is not None and v is not False and v != [] and v != "")
    if flags:
        out.append(("flags", json.dumps(flags, sort_keys=True)))
    return out
