"""Where libcudart is: JetPack, the CUDA toolkits (10.2 to 13), pip's nvidia wheels.

``find_cudart`` lists candidates best first; ``jetseg.backends.cuda.open_runtime`` tries
them in that order until one starts on this driver (a libcudart newer than the driver
answers "insufficient driver", and the next one may work).
"""
import ctypes.util
import glob
import os
import re
import sys


def search_dirs(environ=None):
    """Folders where JetPack, the CUDA toolkits (10.2..13) and pip's nvidia wheels keep it."""
    env = os.environ if environ is None else environ
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            dirs += [os.path.join(env[var], "lib64"), os.path.join(env[var], "lib")]
    for root in ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True):
        dirs += [os.path.join(root, "lib64"), os.path.join(root, "lib"),
                 os.path.join(root, "targets", "aarch64-linux", "lib"),
                 os.path.join(root, "targets", "sbsa-linux", "lib"),
                 os.path.join(root, "targets", "x86_64-linux", "lib")]
    dirs += ["/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
             "/usr/lib"]
    try:                    # pip's nvidia-cuda-runtime-cu1x wheels (desktop only)
        import site
        for sp in site.getsitepackages() + [site.getusersitepackages()]:
            dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "cu*", "lib")), reverse=True)
            dirs.append(os.path.join(sp, "nvidia", "cuda_runtime", "lib"))
    except Exception:       # some virtualenvs have an old site module
        pass
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _version_key(path):
    nums = re.findall(r"\d+", os.path.basename(path).split(".so", 1)[-1])
    return tuple(int(n) for n in nums)


def cuda_major(path):
    """libcudart.so.12.4.127 -> 12; None when the name carries no version."""
    key = _version_key(path)
    return key[0] if key else None


def loaded_cudart(maps="/proc/self/maps"):
    """The libcudart this process already has (TensorRT loads its own): use the same one."""
    try:
        with open(maps) as f:
            for line in f:
                p = line.split()[-1] if line.strip() else ""
                if "/libcudart.so" in p:
                    return p
    except (IOError, OSError):
        pass
    return None


def tensorrt_cuda_major(modules=None):
    """The CUDA major version the imported TensorRT was built for, where its install says
    so (pip's ``tensorrt_cu12_*`` packages beside it); None otherwise (a Jetson's JetPack
    has one CUDA anyway)."""
    trt = (sys.modules if modules is None else modules).get("tensorrt")
    where = getattr(trt, "__file__", None)
    if not where:
        return None
    site = os.path.dirname(os.path.dirname(os.path.abspath(where)))
    try:
        names = sorted(os.listdir(site))
    except OSError:
        return None
    for name in names:
        m = re.match(r"tensorrt_cu(\d+)", name)
        if m:
            return int(m.group(1))
    return None


def find_cudart(environ=None, dirs=None, prefer_major=None):
    """Candidate libcudart paths, best first: $JETSEG_CUDART, the one already loaded, then
    the ``libcudart.so*`` of each known folder (the CUDA major ``prefer_major`` first, then
    newest first), then the loader's own search."""
    env = os.environ if environ is None else environ
    first = []
    if env.get("JETSEG_CUDART"):
        first.append(env["JETSEG_CUDART"])
    if environ is None:
        here = loaded_cudart()
        if here:
            first.append(here)
    found = []
    for d in (search_dirs(env) if dirs is None else dirs):
        names = sorted(glob.glob(os.path.join(d, "libcudart.so*")), key=_version_key,
                       reverse=True)
        found += [f for f in names if os.path.isfile(f)]
    if prefer_major is not None:     # stable: folder order kept within each group
        found.sort(key=lambda p: cuda_major(p) != prefer_major)
    rest = []
    name = ctypes.util.find_library("cudart")
    if name:
        rest.append(name)
    rest += ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0",
             "libcudart.so.10.2"]
    if prefer_major is not None:
        rest.sort(key=lambda p: cuda_major(p) != prefer_major)
    seen, uniq = set(), []
    for p in first + found + rest:
        key = os.path.realpath(p) if os.path.isabs(p) else p
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


# device nodes an NVIDIA driver makes: /dev/nvidia0, /dev/nvidiactl (desktop driver),
# /dev/nvhost-ctrl, /dev/nvhost-gpu ... (Jetson's Tegra driver, also in a container run with
# --runtime nvidia)
GPU_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvhost*")


def gpu_device_nodes(globs=None):
    """The NVIDIA driver's device nodes here; none means no driver (or a container that was
    not given the GPU), whatever libcudart's error code suggests."""
    return sorted(p for g in (globs or GPU_DEVICE_GLOBS) for p in glob.glob(g))
