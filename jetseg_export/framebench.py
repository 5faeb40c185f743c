"""Frame graph vs CPU path, per frame, at camera resolutions: medians and ratios.

    python3 -m jetseg_export.framebench --model engines/camvid.onnx \\
        --frames ../shared/datasets/camvid/val --sizes 1280x720,1920x1080

For each camera size the model's frame graph is made in a temporary folder (as
``jetseg export --from`` makes it), then each frame goes through
    cpu path     Segmenter(net-size model): resize down on the CPU, the net, class map and
                 overlay brought to the frame on the CPU (jetseg.core.processing)
    frame graph  Segmenter(frame graph): the frame in as it is, class map and overlay out
both asked for what jetseg-camera shows (the overlay and the class map), alternating frame by
frame so drift on a shared machine hits both alike. Printed: the median ms a frame, the
backend's share of it (``run``: inside ONNX Runtime / OpenVINO; the rest is jetseg's CPU work
in Python/OpenCV), and the ratio cpu path / frame graph. On a CPU both paths run on the same
cores, so this measures what the graph costs there, not what a GPU gains (see the README's
cost model for a Jetson).

OpenVINO runs through jetseg's backend when this tree has one (``--backend openvino``), else
through a small adapter here (openvino's compile_model on the same ONNX files, f32).
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from jetseg.errors import JetsegError


class OpenVinoRunner(object):
    """The Backend ``run`` interface over openvino, for trees without jetseg's own."""
    name = "openvino"

    def __init__(self, path, threads):
        import openvino as ov
        # f32 like the other paths: on CPUs with AMX/AVX512-BF16 OpenVINO's default is bf16,
        # which moves class ids on ~0.2 % of pixels (and overlays by more than 2 grey levels)
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(path, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, feeds, names=None):
        out = self.request.infer(feeds)
        got = dict((k.get_any_name(), v) for k, v in out.items())
        return dict((n, got[n]) for n in (names or got))

    def close(self):
        self.request = self.compiled = None


class Timed(object):
    """Wraps a backend: adds up the time spent in ``run`` (what the backend itself costs)."""

    def __init__(self, backend):
        self.backend, self.spent = backend, 0.0

    def run(self, feeds, names=None):
        t0 = time.perf_counter()
        out = self.backend.run(feeds, names)
        self.spent += time.perf_counter() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.backend, name)


def open_segmenter(path, backend, threads, mode, frame_graph):
    from jetseg import Segmenter
    from jetseg.backends import BACKEND_NAMES
    if backend == "openvino" and "openvino" not in BACKEND_NAMES:
        seg = Segmenter(path, filter_mode=mode, frame_graph=frame_graph, threads=threads)
        seg.backend.close()
        seg.backend = OpenVinoRunner(path, threads)
    else:
        seg = Segmenter(path, backend=backend, filter_mode=mode, frame_graph=frame_graph,
                        threads=threads)
    seg.backend = Timed(seg.backend)
    return seg


def one_frame(seg, frame):
    """What jetseg-camera does with each frame: segment, draw the overlay, read the classes."""
    seg.backend.spent = 0.0
    t0 = time.perf_counter()
    res = seg.process(frame)
    res.overlay()
    res.classes
    return time.perf_counter() - t0, seg.backend.spent


def bench_size(model, size, frames, backends, modes, threads, repeats, tmp):
    import onnx
    from .framegraph import frame_models
    rows = []
    for mode in modes:
        frame, reference, _ = frame_models(model, size, mode, source="model")
        fpath = os.path.join(tmp, "frame.{}x{}.{}.onnx".format(size[0], size[1], mode))
        rpath = os.path.join(tmp, "net.{}.onnx".format(mode))
        onnx.save(frame, fpath)
        onnx.save(reference, rpath)
        for backend in backends:
            cpu = open_segmenter(rpath, backend, threads, mode, None)
            gpu = open_segmenter(fpath, backend, threads, mode, None)
            for seg in (cpu, gpu):              # warm-up: first runs allocate
                one_frame(seg, frames[0])
            times = {"cpu": [], "graph": []}
            for _ in range(repeats):
                for f in frames:
                    times["cpu"].append(one_frame(cpu, f))
                    times["graph"].append(one_frame(gpu, f))
            cpu.close()
            gpu.close()
            med = dict((k, (1e3 * float(np.median([t for t, _ in v])),
                            1e3 * float(np.median([r for _, r in v]))))
                       for k, v in times.items())
            rows.append((size, mode, backend, med["cpu"], med["graph"], len(times["cpu"])))
    return rows


def format_rows(rows, threads):
    head = ("{:>9}  {:6}  {:11}  {:>16}  {:>16}  {:>7}  (ms a frame, median of {} frames; "
            "{} thread(s))".format("frame", "mode", "backend", "cpu path (run)",
                                   "frame graph (run)", "ratio", rows[0][5] if rows else 0,
                                   threads or "default"))
    out = [head]
    for size, mode, backend, cpu, graph, _ in rows:
        out.append("{:>9}  {:6}  {:11}  {:>7.1f} ({:>5.1f})  {:>8.1f} ({:>5.1f})  {:>6.2f}x".format(
            "{}x{}".format(*size), mode, backend, cpu[0], cpu[1], graph[0], graph[1],
            cpu[0] / graph[0]))
    return "\n".join(out)


def main(argv=None):
    from jetseg.cli.common import run_guarded
    from jetseg.core.modelinfo import parse_size
    p = argparse.ArgumentParser(prog="python3 -m jetseg_export.framebench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a jetseg export (net-size .onnx)")
    p.add_argument("--frames", help="folder of images (default: random frames)")
    p.add_argument("--count", type=int, default=8, help="frames (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="passes over them (default 3)")
    p.add_argument("--sizes", default="1280x720,1920x1080", help="camera sizes, WxH,...")
    p.add_argument("--modes", default="linear,point,smooth", help="filter modes")
    p.add_argument("--backends", default="onnxruntime,openvino")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0: the library's "
                   "default); OpenCV gets as many")
    p.add_argument("--debug", action="store_true")

    def run(args):
        import cv2
        import onnx
        from .framegraph import frames_at
        if args.threads:
            cv2.setNumThreads(args.threads)
        backends = [b for b in args.backends.split(",") if b]
        if "openvino" in backends:
            try:
                import openvino  # noqa: F401
            except ImportError:
                print("openvino is not installed: skipped (pip install openvino)")
                backends.remove("openvino")
        model = onnx.load(args.model)
        rows = []
        tmp = tempfile.mkdtemp(prefix="jetseg-framebench-")
        try:
            for text in args.sizes.split(","):
                size = parse_size(text)
                frames, where = frames_at(size, args.frames, args.count, seed=1)
                print("{}: {}".format(text, where))
                rows += bench_size(model, size, frames, backends,
                                   [m for m in args.modes.split(",") if m],
                                   args.threads or None, args.repeats, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(format_rows(rows, args.threads))
        return 0
    return run_guarded(p, run, argv, prog="framebench")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except JetsegError as e:
        sys.stderr.write("framebench: error: {}\n".format(e))
        sys.exit(2)
