"""``jetseg doctor``: what this machine has for running models, and the fix for what it lacks.

    jetseg doctor              # checklist; exit code 0 when this machine's essentials are there
    jetseg doctor --selftest   # also exercise CUDA (ctypes layer) and TensorRT on the GPU

Essentials depend on the machine: a Jetson needs CUDA, TensorRT and JetPack's OpenCV (with
GStreamer, for csi:// cameras); a desktop needs OpenCV and one inference backend (ONNX
Runtime on the CPU is enough). Everything else is reported as information.
"""
import glob
import os
import platform
import re
import sys

from jetseg.errors import JetsegError, log
from jetseg.backends.tensorrt.platform import jetpack_facts

TEGRA_RELEASE = "/etc/nv_tegra_release"
DT_MODEL = "/proc/device-tree/model"
ARGUS_SOCKET = "/tmp/argus_socket"
# where apt puts Python modules (JetPack 4.6's OpenCV: /usr/lib/python3.6/dist-packages/cv2);
# pip's go to site-packages, ~/.local or /usr/local/lib/python3.X/dist-packages
SYSTEM_DISTS = ("/usr/lib/python3/dist-packages",
                "/usr/lib/python{}.{}/dist-packages".format(*sys.version_info[:2]))


class Check(object):
    """One line of the checklist. ``ok``: True, False, or None (information only)."""

    def __init__(self, name, ok, detail, fix=None, essential=False):
        self.name, self.ok, self.detail, self.fix, self.essential = (name, ok, detail, fix,
                                                                     essential)

    @property
    def mark(self):
        if self.ok:
            return "ok"
        if self.ok is None:
            return "  "
        return "!!" if self.essential else "--"


def jetson_release(path=None):
    """(L4T release "R32.7.1", JetPack line "4.6") from /etc/nv_tegra_release, or None."""
    try:
        with open(path or TEGRA_RELEASE) as f:
            text = f.read()
    except (IOError, OSError):
        return None
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return ("unknown L4T", "unknown")
    major = int(m.group(1))
    minor = int(m.group(2).split(".")[0] or 0)
    l4t = "R{}.{}".format(major, m.group(2))
    if major == 32:
        jp = "4.6" if minor >= 6 else "4.5 or older (jetseg needs JetPack 4.6+)"
    else:
        jp = {34: "5.0 preview", 35: "5.x", 36: "6.x", 38: "7.x"}.get(major, "unknown")
    return l4t, jp


def _board():
    try:
        with open(DT_MODEL, "rb") as f:
            return f.read().rstrip(b"\0").decode("ascii", "replace").strip()
    except (IOError, OSError):
        return None


def _check_cuda(jetson):
    from jetseg.backends import cuda
    try:
        rt = cuda.runtime()
        props = rt.device_properties()
    except Exception as e:          # JetsegError, or OSError from a broken library
        msg = getattr(e, "message", str(e))
        fix = getattr(e, "fix", None) or cuda.with_option(cuda.NO_CUDA_FIX)
        return None, [Check("CUDA", False, msg, fix=fix,
                            essential=jetson)]
    ver = cuda.version_text(rt.runtime_version())
    try:
        drv = cuda.version_text(rt.driver_version())
    except Exception:
        drv = "?"
    out = [Check("CUDA", True, "runtime {} (driver supports {}) from {}".format(
        ver, drv, rt.path), essential=jetson)]
    cc = props["compute_capability"]
    out.append(Check("GPU", True, "{}, compute capability {}.{}, {}{}".format(
        props["name"], cc[0], cc[1], "integrated (shared memory: zero-copy buffers)"
        if props["integrated"] else "discrete",
        ", {:.1f} GB".format(props["total_memory"] / 1e9) if props.get("total_memory")
        else ""), essential=jetson))
    return props, out


def _check_tensorrt(jetson, props):
    from jetseg.backends.tensorrt import platform as plat
    try:
        import tensorrt as trt
    except ImportError as e:
        return [Check("TensorRT", False, "not installed ({})".format(e), fix=plat.trt_fix(),
                      essential=jetson)], None
    api = ("named tensors, execute_async_v3" if hasattr(trt, "ICudaEngine") and
           hasattr(trt.ICudaEngine, "num_io_tensors") else "bindings, execute_async_v2")
    typed = ", strongly typed: engines have the ONNX's own precision" \
        if plat.strongly_typed(trt) else ""
    out = [Check("TensorRT", True, "{} ({}{})".format(trt.__version__, api, typed),
                 essential=jetson)]
    if props is not None:
        fast16, fast8 = plat.fast_precisions(props["compute_capability"])
        how = "by compute capability"
        try:
            from jetseg.backends.tensorrt.build import fast_modes
            builder = trt.Builder(plat.trt_logger(trt))
            fast16, fast8 = fast_modes(builder, props["compute_capability"])
            how = "TensorRT builder" if hasattr(builder, "platform_has_fast_fp16") else how
        except Exception:       # TensorRT's own errors: the table answer stands
            pass
        out.append(Check("fast FP16/INT8", True, "FP16 {}, INT8 {} ({}){}".format(
            "yes" if fast16 else "no", "yes" if fast8 else "no", how,
            "" if fast8 else ": build --precision fp16"), essential=False))
    return out, trt


def _check_target(l4t, trt):
    """Which ``jetseg export --target`` this machine's TensorRT parses: from the installed
    TensorRT, else from the L4T release's (a Jetson without TensorRT yet)."""
    from jetseg.backends.tensorrt.platform import export_target
    version = getattr(trt, "__version__", None)
    jp = jetpack_facts(l4t) if l4t else None
    if version is None and jp is not None:
        version = jp["tensorrt"]
    target = export_target(version) if version else None
    if target is None:
        return []
    note = jp["note"] if jp and jp["note"] and not trt else ""
    if trt is not None and version.startswith("8.4"):
        note = "TensorRT 8.4's ONNX parser has no uint8: trt8.2 exports only"
    return [Check("export target", None, "--target {} (TensorRT {}{}){}".format(
        target, version, "" if trt is not None else ", as L4T {} ships".format(l4t),
        ": " + note if note else ""))]


def _check_opencv(jetson):
    try:
        import cv2
    except ImportError as e:
        fix = ("sudo apt-get install python3-opencv (JetPack's build, with GStreamer); never "
               "pip install opencv-python on a Jetson" if jetson
               else "pip install 'jetseg[desktop]' (opencv-python-headless)")
        return [Check("OpenCV", False, "not importable ({})".format(e), fix=fix,
                      essential=True)]
    info = cv2.getBuildInformation() if hasattr(cv2, "getBuildInformation") else ""
    m = re.search(r"GStreamer:\s*(\S+)", info)
    gst = bool(m and m.group(1).upper().startswith("YES"))
    where = os.path.dirname(getattr(cv2, "__file__", "") or "")
    out = [Check("OpenCV", True, "{} from {}".format(cv2.__version__, where or "?"),
                 essential=True),
           Check("GStreamer", gst, "in OpenCV: {}".format("yes" if gst else "no (csi:// cameras "
                                                          "and rtsp:// via GStreamer need it)"),
                 fix=("remove pip's OpenCV so JetPack's is used: pip3 uninstall opencv-python "
                      "opencv-python-headless opencv-contrib-python" if jetson else
                      "only needed for GStreamer pipelines; files and /dev/video* work "
                      "without it"), essential=jetson)]
    if jetson:
        system = [d for d in SYSTEM_DISTS if os.path.isdir(os.path.join(d, "cv2")) or
                  glob.glob(os.path.join(d, "cv2*.so"))]
        shadow = bool(system) and not any(where.startswith(d) for d in SYSTEM_DISTS)
        out.append(Check("OpenCV source", not shadow,
                         "pip's opencv-python ({}) hides JetPack's OpenCV".format(where) if shadow
                         else "JetPack's OpenCV is the one imported" if system else
                         "no JetPack OpenCV in {}".format(" or ".join(SYSTEM_DISTS)),
                         fix="pip3 uninstall opencv-python opencv-python-headless "
                             "opencv-contrib-python", essential=jetson))
    return out


def _check_ort(jetson, have_trt):
    try:
        import onnxruntime as ort
    except ImportError as e:
        return [Check("ONNX Runtime", False, "not installed ({})".format(e),
                      fix="NVIDIA's onnxruntime-gpu wheel for your JetPack (optional: "
                          "TensorRT engines do not need it)" if jetson else
                      "pip install 'jetseg[desktop]'", essential=not jetson and not have_trt)]
    return [Check("ONNX Runtime", True, "{} (providers: {})".format(
        ort.__version__, ", ".join(ort.get_available_providers())),
        essential=not jetson and not have_trt)]


def _check_openvino():
    """OpenVINO (the x86 CPU engine): its version, and whether this CPU computes bf16
    (``--precision bf16`` then runs fp32 models several times faster)."""
    from jetseg.backends.openvino import cpu_devices
    devices = cpu_devices()
    if not devices:
        return Check("OpenVINO", None, "not installed or no device (optional: pip install "
                                       "'jetseg[openvino]' on an x86 board or desktop)")
    import openvino
    detail = "{} (devices: {})".format(openvino.__version__.split("-")[0], ", ".join(devices))
    if "CPU" in devices:
        try:
            caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        except Exception as e:          # an older OpenVINO without the property: say nothing
            log.debug("openvino CPU capabilities: %s", e)
            caps = []
        detail += "; this CPU computes bf16: --precision bf16 runs fp32 models faster " \
                  "(jetseg bench shows how much)" if "BF16" in caps else \
                  "; no bf16 on this CPU: fp32"
    return Check("OpenVINO", True, detail)


def _check_auto():
    """Which backend ``--backend auto`` picks for an .onnx here, and why."""
    from jetseg.backends import auto_backend
    name, why = auto_backend()
    return Check("auto backend", None, "{} for an .onnx ({})".format(name, why))


def collect():
    """All checks for this machine, in print order."""
    rel = jetson_release()
    jetson = rel is not None
    checks = [Check("Python", sys.version_info >= (3, 6), "{} ({})".format(
        platform.python_version(), sys.executable), fix="jetseg needs Python 3.6+",
        essential=True)]
    try:
        import numpy
        checks.append(Check("numpy", True, numpy.__version__, essential=True))
    except ImportError as e:
        checks.append(Check("numpy", False, str(e), fix="sudo apt-get install python3-numpy"
                            if jetson else "pip install numpy", essential=True))
    if jetson:
        board = _board()
        jp = jetpack_facts(rel[0])
        checks.append(Check("Jetson", True, "L4T {} = JetPack {}{}{}".format(
            rel[0], jp["jetpack"] if jp else rel[1],
            " (TensorRT {})".format(jp["tensorrt"]) if jp else "",
            " on " + board if board else ""), essential=True))
    else:
        checks.append(Check("Jetson", None, "not a Jetson ({} missing): desktop checks, "
                            "CUDA and TensorRT optional".format(TEGRA_RELEASE)))
    props, cuda_checks = _check_cuda(jetson)
    checks += cuda_checks
    trt_checks, trt = _check_tensorrt(jetson, props)
    checks += trt_checks
    checks += _check_target(rel[0] if jetson else None, trt)
    checks += _check_opencv(jetson)
    checks += _check_ort(jetson, trt is not None)
    checks.append(_check_openvino())
    checks.append(_check_auto())
    cams = sorted(glob.glob("/dev/video*"))
    detail = ", ".join(cams) if cams else "no /dev/video* devices"
    if jetson:
        detail += "; argus socket {}".format("present" if os.path.exists(ARGUS_SOCKET)
                                              else "absent (csi:// in Docker needs -v "
                                                   "/tmp/argus_socket:/tmp/argus_socket)")
    checks.append(Check("cameras", None, detail))
    if not jetson:      # a desktop needs one backend: ORT, or TensorRT
        have = [c for c in checks if c.name in ("ONNX Runtime", "TensorRT") and c.ok]
        if have:
            for c in checks:
                if c.name == "ONNX Runtime":
                    c.essential = False
    return checks, jetson


def format_checks(checks, jetson):
    lines = ["jetseg doctor: {}".format("Jetson" if jetson else "desktop (not a Jetson)")]
    for c in checks:
        lines.append("  [{}] {:<15} {}".format(c.mark, c.name, c.detail))
        if not c.ok and c.ok is not None and c.fix:
            lines.append("       {:<15} fix: {}".format("", c.fix))
    missing = [c.name for c in checks if c.essential and c.ok is False]
    if missing:
        lines.append("missing for this machine: {} (fixes above)".format(", ".join(missing)))
    else:
        lines.append("all essentials for this machine are present")
    return "\n".join(lines), (1 if missing else 0)


def run_doctor(selftest=False, model=None, out=None):
    """Print the checklist (and the self-test); return the exit code."""
    out = out or sys.stdout
    checks, jetson = collect()
    text, code = format_checks(checks, jetson)
    out.write(text + "\n")
    if selftest:
        from jetseg.backends.selftest import run_selftest
        ok = run_selftest(out, model=model)
        code = code or (0 if ok else 1)
    return code


def register(subparsers, common_parent):
    d = subparsers.add_parser(
        "doctor", parents=[common_parent], help="check CUDA, TensorRT, OpenCV, cameras",
        description="Print what this machine has for running models, with the fix for "
                    "anything missing. Exit code 0 when the essentials are there.")
    d.add_argument("--selftest", action="store_true",
                   help="also exercise CUDA buffers and a tiny TensorRT engine on the GPU")
    d.add_argument("--model", help="with --selftest: compare this ONNX as an fp32 engine "
                                   "against ONNX Runtime")
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args):
    if args.model and not args.selftest:
        raise JetsegError("--model is only used with --selftest", fix="add --selftest")
    return run_doctor(selftest=args.selftest, model=args.model)
