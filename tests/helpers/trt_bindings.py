"""TensorRT's Python API names per generation, read from NVIDIA's compiled bindings on PyPI.

1. ``fetch_wheel(spec)`` runs ``pip download --no-deps --only-binary=:all:`` for a bindings
   wheel (``tensorrt-bindings`` 8.6.1, ``tensorrt-cu12-bindings`` 10.x / 11.x) into a cache
   folder (``$JETSEG_TRT_BINDINGS_CACHE`` or ``~/.cache/jetseg/trt-bindings``).
2. ``extract_names(wheel)`` imports the *real* compiled extension
   (``tensorrt_bindings/tensorrt.so``) in a throw-away subprocess. It needs
   ``libnvinfer.so.N`` and friends (not installable without NVIDIA's native packages), but
   at load time it takes only about ten C entry points from them (``nm -D
   --undefined-only``: ``createInferBuilder_INTERNAL``, ``getPluginRegistry``, ...), none
   with a symbol version. gcc builds stub libraries under those sonames whose functions
   return NULL (never called: nothing beyond import and ``dir()`` runs), so pybind11
   registers every real class and enum and ``dir()`` gives exact ``Class -> members`` maps.

The result is cached as JSON beside the wheel. It needs Linux x86_64, gcc, nm and readelf,
and a CPython the wheel was built for (tensorrt-bindings 8.6.1: CPython 3.6 to 3.11).
First written as the research for issue 11.
"""
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

# Pinned so results are reproducible: 8.6 (JetPack 6.0's release line), 10.3 (JetPack
# 6.1/6.2), the newest 10.x and 11.x on PyPI when this was written. Keys are the versions
# the generations are compared at.
GENERATIONS = {
    "8.6": "tensorrt-bindings==8.6.1",
    "10.3": "tensorrt-cu12-bindings==10.3.0",
    "10.16": "tensorrt-cu12-bindings==10.16.1.11",
    "11.4": "tensorrt-cu12-bindings==11.4.0.106",
}
SCHEMA = 2          # bump when the JSON below changes: older caches are re-extracted

# pip output that means "could not reach the index" (not "no such version")
_UNREACHABLE = ("NewConnectionError", "Failed to establish a new connection",
                "Temporary failure in name resolution", "Name or service not known",
                "Max retries exceeded", "ProxyError", "ConnectTimeoutError",
                "ReadTimeoutError", "Network is unreachable", "Could not fetch URL",
                "SSLError")
# the native libraries the extension links (8.6 also libnvparsers)
_STUB_LIBS = ("nvinfer", "nvonnxparser", "nvparsers", "nvinfer_plugin")


def cache_dir(path=None):
    path = path or os.environ.get("JETSEG_TRT_BINDINGS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "jetseg", "trt-bindings")
    os.makedirs(path, exist_ok=True)
    return path


def _cached_wheel(spec, folder):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([A-Za-z0-9_.+\-]+)\s*$", spec)
    if not m:
        return None
    stem = re.sub(r"[-_.]+", "_", m.group(1)).lower() + "-" + m.group(2)
    tag = "cp%d%d" % sys.version_info[:2]
    hits = sorted(glob.glob(os.path.join(folder, "%s-%s-*.whl" % (stem, tag))))
    return hits[0] if hits else None


def fetch_wheel(spec, cache=None):
    """(wheel path, None), or (None, reason) only when the package index is unreachable;
    any other pip failure (unknown version, no wheel for this Python) raises RuntimeError
    with pip's own ERROR lines."""
    spec = GENERATIONS.get(spec, spec)
    folder = cache_dir(cache)
    hit = _cached_wheel(spec, folder)
    if hit:
        return hit, None
    before = set(glob.glob(os.path.join(folder, "*.whl")))
    # 8.6 wheels are manylinux_2_17, 10.x/11.x manylinux_2_28: offer both tags
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", "%d%d" % sys.version_info[:2], "--implementation", "cp",
           "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
           "--disable-pip-version-check", "-vv", "-d", folder, spec]  # -vv logs connections
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        listed = re.search(r"\(from versions: (?!none\))", out)   # an index answered
        if any(s in out for s in _UNREACHABLE) and not listed:
            lines = [l for l in out.splitlines() if any(s in l for s in _UNREACHABLE)]
            return None, "package index unreachable while downloading %r: %s" % (
                spec, " | ".join(lines)[:500])
        errors = "\n".join(l for l in out.splitlines() if l.startswith("ERROR"))
        raise RuntimeError("pip download %r failed (rc=%d):\n%s" % (
            spec, proc.returncode, errors or out[-2000:]))
    new = sorted(set(glob.glob(os.path.join(folder, "*.whl"))) - before)
    if new:
        return new[0], None
    m = re.search(r"(?:Saved|File was already downloaded) (\S+\.whl)", out)
    if m:
        return os.path.join(folder, os.path.basename(m.group(1))), None
    raise RuntimeError("pip download %r gave no wheel:\n%s" % (spec, out[-2000:]))


def _unpack(wheel, folder):
    dest = os.path.join(folder, "unpacked", os.path.basename(wheel)[:-4])
    if not os.path.isdir(dest):
        tmp = tempfile.mkdtemp(dir=folder)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(tmp, dest)
    return dest


def _run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def _build_stubs(so, out_dir):
    """Stub libraries under the extension's TensorRT sonames, exporting every symbol it
    takes from outside Python and libc, each returning NULL."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                        _run(["readelf", "-d", so]).stdout)
    sonames = [n for n in needed if re.match(r"lib(%s)\.so" % "|".join(_STUB_LIBS), n)]
    if not sonames:
        raise RuntimeError("no TensorRT libraries among the NEEDED entries of %s" % so)
    symbols = []
    for line in _run(["nm", "-D", "--undefined-only", so]).stdout.splitlines():
        parts = line.split()
        if (len(parts) == 2 and parts[0] == "U" and "@" not in parts[1]
                and not parts[1].startswith(("Py", "_Py"))
                and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", parts[1])):
            symbols.append(parts[1])
    os.makedirs(out_dir, exist_ok=True)
    src = os.path.join(out_dir, "stub.c")
    with open(src, "w") as f:
        f.write("/* NULL-returning stand-ins so the bindings import; never called */\n")
        f.writelines("void *%s(void) { return 0; }\n" % s for s in symbols)
    for soname in sonames:
        target = os.path.join(out_dir, soname)
        if not os.path.exists(target):
            p = _run(["gcc", "-shared", "-fPIC", "-o", target, src, "-Wl,-soname," + soname])
            if p.returncode != 0:
                raise RuntimeError("gcc failed on %s: %s" % (soname, p.stderr[-1000:]))
    return out_dir


# Runs in the throw-away subprocess: imports the bindings and dumps every class's members.
_INTROSPECT = r'''
import json, re, sys, types
sys.path.insert(0, sys.argv[1])
import tensorrt_bindings as pkg
ext = pkg.tensorrt
base = set(dir(object)) | {"_pybind11_conduit_v1_"}
out = {"module": sorted(n for n in dir(ext) if not n.startswith("__")),
       "python_wrapper": sorted(n for n in vars(pkg) if not n.startswith("_")
                                and n not in vars(ext) and callable(getattr(pkg, n))
                                and not isinstance(getattr(pkg, n), types.ModuleType)),
       "version": getattr(pkg, "__version__", None), "members": {}, "enums": [],
       "deprecated": {}, "signatures": {}}
DEP = re.compile(r"(?<!\()\[DEPRECATED\]|Deprecated in TensorRT|has been deprecated", re.I)

def walk(qual, cls):
    if qual in out["members"]:
        return
    names = sorted(n for n in dir(cls) if not n.startswith("__") and n not in base)
    out["members"][qual] = names
    enum_docs = {}
    if hasattr(cls, "__members__"):
        out["enums"].append(qual)
        doc = (cls.__doc__ or "").split("Members:", 1)[-1]
        for m in re.finditer(r"^  (\w+) : (.*?)(?=^  \w+ : |\Z)", doc, re.S | re.M):
            enum_docs[m.group(1)] = m.group(2)
    for n in names:
        raw = next((vars(k)[n] for k in cls.__mro__ if n in vars(k)), None)
        if n in enum_docs or isinstance(raw, cls):
            doc = enum_docs.get(n, "")
        else:
            doc = getattr(raw, "__doc__", None) or ""
        if callable(raw) and not isinstance(raw, type):
            first = doc.strip().splitlines()[0] if doc.strip() else ""
            out["signatures"][qual + "." + n] = first[:300]
        doc = re.sub(r"\(\[DEPRECATED\][^)]*\)", "", doc)
        m = DEP.search(doc)
        if m and not isinstance(raw, type):
            out["deprecated"][qual + "." + n] = " ".join(doc[m.start():m.start() + 140].split())
        if isinstance(raw, type) and raw.__module__ == cls.__module__:
            walk(qual + "." + n, raw)

for n in out["module"]:
    obj = getattr(ext, n)
    if isinstance(obj, type):
        walk(n, obj)
out["enums"].sort()
json.dump(out, sys.stdout)
'''


def extract_names(wheel, cache=None):
    """{"module", "python_wrapper", "version", "members", "enums", "deprecated",
    "signatures"} of the bindings in ``wheel`` (cached as JSON); RuntimeError when the
    extension cannot be imported here."""
    folder = cache_dir(cache)
    out_json = os.path.join(folder, "names-v%d-%s.json" % (SCHEMA, os.path.basename(wheel)[:-4]))
    if os.path.exists(out_json):
        with open(out_json) as f:
            return json.load(f)
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
        raise RuntimeError("importing the bindings needs a Linux x86_64 host")
    for tool in ("gcc", "nm", "readelf"):
        if not shutil.which(tool):
            raise RuntimeError("%s is needed to import the bindings and is not installed" % tool)
    unpacked = _unpack(wheel, folder)
    so = (glob.glob(os.path.join(unpacked, "tensorrt_bindings", "tensorrt*.so")) or [None])[0]
    if so is None:
        raise RuntimeError("no tensorrt*.so in %s" % wheel)
    stubs = _build_stubs(so, os.path.join(folder, "stubs", os.path.basename(unpacked)))
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (stubs, env.get("LD_LIBRARY_PATH"))
                                             if p)
    env.pop("PYTHONPATH", None)
    p = subprocess.run([sys.executable, "-c", _INTROSPECT, unpacked], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("importing %s with stub libraries failed (rc=%d): %s" % (
            os.path.basename(wheel), p.returncode, p.stderr[-1500:]))
    res = json.loads(p.stdout)
    res["wheel"] = os.path.basename(wheel)
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    return res


def load_names(generation, cache=None):
    """(names, None), or (None, reason) when the package index is unreachable. ``names``:
    {"module": set, "members": {class: set}, "version": str, ...}."""
    wheel, reason = fetch_wheel(generation, cache)
    if wheel is None:
        return None, reason
    res = dict(extract_names(wheel, cache))
    res["module"] = set(res["module"]) | set(res["python_wrapper"])
    res["members"] = dict((k, set(v)) for k, v in res["members"].items())
    return res, None


def has(names, dotted):
    """has(names, "ICudaEngine.num_bindings"), has(names, "nptype")."""
    if "." not in dotted:
        return dotted in names["module"]
    cls, _, member = dotted.rpartition(".")
    return member in names["members"].get(cls, ())
