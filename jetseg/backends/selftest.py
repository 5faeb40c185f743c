"""``jetseg doctor --selftest``: exercise CUDA and TensorRT on this machine's GPU.

CUDA half (ctypes runtime, no TensorRT needed): pinned, mapped and device buffers, a
stream, events, and memcpy round trips (async H2D/D2D/D2H on the stream, and synchronous)
checked byte for byte. TensorRT half: a tiny network built, deserialised and run through
TrtBackend; with ``--model``, the model as an fp32 engine (TF32 off) against ONNX Runtime
on the CPU: class maps compared by agreement, overlays with a tolerance, scores by value.
"""
import os

# agreement needed between the engine and ONNX Runtime, by the engine's precision
AGREE = {"fp32": 0.995, "fp16": 0.98, "int8": 0.95}
SCORE_TOL = {"fp32": 1e-3, "fp16": 5e-2, "int8": 0.25}    # relative to the scores' range
OVERLAY_LEVELS = 2          # blending rounds differently on different hardware


def run_selftest(out, model=None):
    """Print each step as ``[ok]`` / ``[!!]``; True when everything passed."""
    from jetseg.backends import cuda
    out.write("self-test:\n")

    def line(good, what):
        out.write("  [{}] {}\n".format("ok" if good else "!!", what))
        return good

    try:
        rt = cuda.runtime()
    except Exception as e:          # JetsegError, or OSError from a broken library
        out.write("  [!!] CUDA: {}\n  cannot self-test without a CUDA GPU\n".format(e))
        return False
    ok = cuda_selftest(rt, line)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        out.write("  [--] TensorRT not installed: engine self-test skipped\n")
        return ok
    try:
        ok &= tensorrt_selftest(line, rt)
        if model:
            ok &= model_selftest(line, model, rt)
    except Exception as e:          # JetsegError, or TensorRT's own: a diagnostic says it
        ok &= line(False, "TensorRT self-test failed: {}".format(e))
    return ok


def cuda_selftest(rt, line, nbytes=4 << 20):
    """Random bytes through pinned -> device -> device -> pinned on a stream (timed with
    events), back synchronously, and through mapped memory both ways: all byte-exact."""
    import numpy as np
    from jetseg.backends import cuda
    from jetseg.backends.cuda_buffers import DeviceBuffer, Event, HostBuffer, Stream
    data = np.random.RandomState(7).randint(0, 256, nbytes).astype(np.uint8)
    ok = True
    with HostBuffer((nbytes,), np.uint8, rt=rt) as src, \
            HostBuffer((nbytes,), np.uint8, rt=rt) as dst, \
            DeviceBuffer(nbytes, rt=rt) as dev, DeviceBuffer(nbytes, rt=rt) as dev2, \
            Stream(rt=rt) as s:
        src.array[:] = data
        t0, t1 = Event(rt=rt), Event(rt=rt)
        try:
            t0.record(s)
            dev.copy_from(src, s)
            rt.memcpy(dev2.ptr, dev.ptr, nbytes, cuda.D2D, s.handle)
            dev2.copy_to(dst, s)
            t1.record(s)
            s.synchronize()
            ms = t1.elapsed_ms(t0)
        finally:
            t0.close()
            t1.close()
        ok &= line(dst.array.tobytes() == data.tobytes(),
                   "cudaHostAlloc + cudaMalloc + cudaMemcpyAsync H2D/D2D/D2H on a stream "
                   "(pinned -> device -> device -> pinned): {} MB byte-exact, {:.3f} ms by "
                   "cudaEventElapsedTime".format(nbytes >> 20, ms))
        dst.array[:] = 0
        rt.memcpy(dst.array.ctypes.data, dev2.ptr, nbytes, cuda.D2H)
        ok &= line(dst.array.tobytes() == data.tobytes(),
                   "synchronous cudaMemcpy D2H: byte-exact")
        if not rt.device_properties()["can_map_host_memory"]:
            return ok & line(True, "mapped host memory: not supported by this GPU (skipped)")
        with HostBuffer((nbytes,), np.uint8, mapped=True, rt=rt) as m:
            m.array[:] = data[::-1]
            rt.memcpy(dev.ptr, m.device_ptr, nbytes, cuda.D2D, s.handle)   # GPU reads it
            dev.copy_to(dst, s)
            s.synchronize()
            read = dst.array.tobytes() == data[::-1].tobytes()
            rt.memcpy(m.device_ptr, dev2.ptr, nbytes, cuda.D2D, s.handle)  # GPU writes it
            s.synchronize()
            wrote = m.array.tobytes() == data.tobytes()
            ok &= line(read and wrote, "cudaHostAllocMapped + cudaHostGetDevicePointer: "
                       "the GPU {} host memory in place, byte-exact".format(
                           "reads and writes" if read and wrote else
                           "FAILED to read" if not read else "FAILED to write"))
    return ok


def tensorrt_selftest(line, rt):
    """A tiny network (x + x, then top-1 over channels) built and run through TrtBackend."""
    import numpy as np
    from jetseg.backends.tensorrt import platform as plat
    from jetseg.backends.tensorrt.build import explicit_batch_flags, set_workspace
    from jetseg.backends.tensorrt.runner import TrtBackend
    trt = plat.import_tensorrt()
    builder = trt.Builder(plat.trt_logger(trt))
    network = builder.create_network(explicit_batch_flags(trt))
    image = network.add_input("image", trt.float32, (1, 3, 8, 8))
    layer = network.add_elementwise(image, image, trt.ElementWiseOperation.SUM)
    tensor = layer.get_output(0)
    tensor.name = "scores"
    network.mark_output(tensor)
    layer = network.add_topk(tensor, trt.TopKOperation.MAX, 1, 1 << 1)
    tensor = layer.get_output(1)
    tensor.name = "classes"
    network.mark_output(tensor)
    config = builder.create_builder_config()
    set_workspace(trt, config, 64)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        return line(False, "build_serialized_network returned nothing")
    b = TrtBackend(bytes(plan), trt=trt, rt=rt)
    try:
        feed = np.random.RandomState(0).rand(1, 3, 8, 8).astype(np.float32)
        got = b.run({"image": feed})
        good = (np.allclose(got["scores"], 2 * feed) and np.array_equal(
            got["classes"].reshape(1, 8, 8), feed.argmax(axis=1)))
        modes = "/".join(sorted(set(s.mode for s in b._slots.values())))
        return line(good, "TensorRT {}: build_serialized_network, deserialize_cuda_engine, {} "
                    "with {} buffers: {:.3f} ms on the GPU, class map {}".format(
                        trt.__version__, b.io.kind, modes, b.last_gpu_ms,
                        got["classes"].dtype))
    finally:
        b.close()


def output_roles(metadata, outputs):
    """{output name: "classes" | "overlay" | "scores" | ...}: from the model's metadata,
    else integer outputs are class maps and the rest scores."""
    from jetseg.core.modelinfo import ModelInfo
    roles = dict((name, role) for role, name in
                 ModelInfo.from_metadata(metadata).outputs.items())
    for t in outputs:
        if t.name not in roles:
            roles[t.name] = "classes" if "int" in str(t.dtype) else "scores"
    return roles


def compare_outputs(got, want, roles, precision="fp32"):
    """[(name, ok, text)]: engine outputs ``got`` against ONNX Runtime's ``want``."""
    import numpy as np
    agree = AGREE.get(precision, AGREE["fp32"])
    out = []
    for name in sorted(want):
        a, b = np.asarray(got[name]), np.asarray(want[name])
        role = roles.get(name, "scores")
        if a.size != b.size:
            out.append((name, False, "{}: {} values from the engine, {} from ONNX Runtime"
                        .format(name, a.size, b.size)))
            continue
        a = a.reshape(b.shape)
        if role == "classes":
            share = float(np.mean(a.astype(np.int64) == b.astype(np.int64)))
            out.append((name, share >= agree, "{} (class map): {:.3%} of pixels agree "
                        "(needs {:.1%})".format(name, share, agree)))
        elif role == "overlay":
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            if diff.ndim >= 3 and diff.shape[-1] not in (3, 4) and diff.shape[1] in (3, 4):
                diff = np.moveaxis(diff, 1, -1)             # NCHW -> channels last
            share = float(np.mean(diff.reshape(-1, diff.shape[-1]).max(axis=1)
                                  <= OVERLAY_LEVELS))
            out.append((name, share >= agree, "{} (overlay): {:.3%} of pixels within {} "
                        "levels (needs {:.1%})".format(name, share, OVERLAY_LEVELS, agree)))
        else:
            b64 = b.astype(np.float64)
            scale = max(1.0, float(np.abs(b64).max()) if b.size else 1.0)
            worst = float(np.abs(a.astype(np.float64) - b64).max()) if b.size else 0.0
            tol = SCORE_TOL.get(precision, SCORE_TOL["fp32"]) * scale
            out.append((name, worst <= tol, "{} ({}): max |diff| {:.2e} (tolerance {:.1e})"
                        .format(name, role, worst, tol)))
    return out


def open_engine_for_check(onnx_path, rt, facts=None):
    """The model as an fp32 engine with TF32 off (exact fp32 maths on Ampere and newer),
    built in the cache beside ``onnx_path``."""
    from jetseg.backends.tensorrt import loader, platform as plat
    from jetseg.backends.tensorrt.runner import TrtBackend
    trt = plat.import_tensorrt()
    facts = facts or plat.platform_facts(trt, rt)
    load = loader.DeserializedEngine(loader.EngineFromCache(
        onnx_path, precision="fp32", tf32=False, facts=facts), trt)
    return TrtBackend(load, trt=trt, rt=rt, props=facts)


def model_selftest(line, model, rt):
    """``model`` as an fp32 engine (TF32 off) against ONNX Runtime on the CPU."""
    import shutil
    import tempfile

    import numpy as np
    from jetseg.backends.onnxruntime import OrtBackend
    tmp = tempfile.mkdtemp(prefix="jetseg-selftest-")
    ort_b = trt_b = None
    try:
        onnx = os.path.join(tmp, os.path.basename(model))
        shutil.copy(model, onnx)
        ort_b = OrtBackend(model, providers="cpu")
        trt_b = open_engine_for_check(onnx, rt)
        t = ort_b.inputs[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in t.shape]
        rnd = np.random.RandomState(0)
        feed = (rnd.randint(0, 256, shape) if t.dtype == "uint8" else rnd.rand(*shape)
                ).astype(t.dtype)
        want = ort_b.run({t.name: feed})
        got = trt_b.run({t.name: feed})
        precision = (trt_b.header or {}).get("precision") or "fp32"
        results = compare_outputs(got, want, output_roles(ort_b.metadata, ort_b.outputs),
                                  precision)
        ok = all(r[1] for r in results)
        return line(ok, "{}: {} engine (TF32 off) vs ONNX Runtime CPU: {}".format(
            os.path.basename(model), precision, "; ".join(r[2] for r in results)))
    finally:
        for b in (trt_b, ort_b):
            if b is not None:
                b.close()
        shutil.rmtree(tmp, ignore_errors=True)
