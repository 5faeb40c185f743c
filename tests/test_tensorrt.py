"""The TensorRT side without TensorRT.

Real tests (pure Python, no fakes): the engine header format, the guard, cache naming and
staleness, atomic writes, reading ONNX facts from raw bytes, and the errors a user gets on a
machine without TensorRT.

API-shape tests (marked in their names): our dispatch between TensorRT's API generations,
run against *recording fakes* that only mimic each generation's method names (8.2:
bindings + execute_async_v2; 8.5: both; 10: named tensors + execute_async_v3) and a host
emulation of libcudart (tests/test_cuda.py). They prove which calls jetseg makes and in
what order, NOT that TensorRT accepts them: that needs a Jetson or a CUDA machine with
TensorRT (``jetseg doctor --selftest``).
"""
import json
import os
import re
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.helpers.common import NAMES5, run_cli
from jetseg.backends import cuda_buffers
from jetseg.backends.tensorrt import cache, engine_file as eng
from jetseg.backends import onnx_proto
from jetseg.backends import open_backend
from jetseg.backends.tensorrt import runner as trtmod, tensors
from jetseg.cli import build_parser
from jetseg.errors import JetsegError, command_line_names
from tests.helpers.cuda_emulator import emulated_runtime
from tests.helpers.trt_fakes import (DESKTOP, GENERATIONS, NANO, ORIN, PLAN, Engine10, Engine82,
                                     FakeBuilderTrt, FakeNet, fake_trt, frame, onnx_with)
from tests.helpers.trt_fakes import fake_platform as fake_platform_setter
from tests.helpers.trt_fakes import header as fake_header

# ==== engine file format ==================================================================


def test_header_round_trip_and_plan_stripped_byte_exact(tmp_path):
    meta = {"jetseg.classes": json.dumps(NAMES5), "jetseg.precision": '"fp32"'}
    h = eng.make_header(meta, tensorrt="8.2.1.8", gpu="NVIDIA Tegra X1",
                        compute_capability=(5, 3), precision="fp16", onnx_sha256="ab" * 32,
                        source="camvid.onnx", flags={"workspace_mb": 512})
    plan = bytes(bytearray(range(256))) * 10 + eng.MAGIC       # any bytes, even our magic
    p = eng.write_engine(str(tmp_path / "m.engine"), h, plan)
    header, got = eng.read_engine(p)
    assert got == plan
    assert header["metadata"] == meta and header["compute_capability"] == [5, 3]
    assert header["format"] == eng.FORMAT and header["flags"] == {"workspace_mb": 512}
    assert eng.read_header(p) == header
    with open(p, "rb") as f:
        data = f.read()
    assert data.startswith(eng.MAGIC)
    h2, offset = eng.split_engine(data)
    assert h2 == header and data[offset:] == plan


def test_plain_plan_without_header_loads_as_is(tmp_path):
    p = tmp_path / "trtexec.plan"
    p.write_bytes(b"ftrt\x00\x01plan-from-trtexec")
    assert eng.read_engine(str(p)) == (None, b"ftrt\x00\x01plan-from-trtexec")
    assert eng.read_header(str(p)) is None
    assert eng.split_engine(b"ftrt") == (None, 0)


@pytest.mark.parametrize("tail,why", [
    (b"\xff\xff\xff\x7f{}", "impossible"),
    (eng._LEN.pack(5) + b"{nope", "not valid JSON"),
    (eng._LEN.pack(2) + b"{}", "plan after it is missing"),
    (b"\x01", "cut short"),
])
def test_damaged_headers_are_named(tmp_path, tail, why):
    p = tmp_path / "bad.engine"
    p.write_bytes(eng.MAGIC + tail)
    with pytest.raises(JetsegError, match=why) as e:
        eng.read_engine(str(p))
    assert "jetseg build" in str(e.value)


def test_newer_header_format_asks_for_upgrade():
    blob = eng.pack_engine({"format": eng.FORMAT + 1}, b"plan")
    with pytest.raises(JetsegError, match="newer than this jetseg"):
        eng.split_engine(blob)


# ==== guard ===============================================================================
def test_guard_accepts_same_trt_release_and_gpu():
    assert cache.compat_problems(fake_header(NANO), NANO) == []
    other_build = dict(NANO, tensorrt="8.2.1.9")            # same release, other build number
    assert cache.compat_problems(fake_header(NANO), other_build) == []
    cache.check_engine(fake_header(ORIN), ORIN, "x.engine")


def test_guard_refuses_other_tensorrt_with_rebuild_command():
    with pytest.raises(JetsegError) as e:
        cache.check_engine(fake_header(NANO), dict(NANO, tensorrt="8.5.2.2"), "cam.engine")
    msg = str(e.value)
    assert "built by TensorRT 8.2.1.8 and this is TensorRT 8.5.2.2" in msg
    assert "jetseg build camvid.onnx --precision fp16 -o cam.engine" in msg


def test_guard_refuses_other_gpu():
    probs = cache.compat_problems(fake_header(NANO), ORIN)
    assert any("compute capability 5.3 (NVIDIA Tegra X1) and this GPU is 8.7 (Orin)" in p
               for p in probs)
    same_cc_other_name = dict(DESKTOP, gpu="NVIDIA RTX A2000")
    probs = cache.compat_problems(fake_header(DESKTOP), same_cc_other_name)
    assert probs == ["it was built on a NVIDIA GeForce RTX 3060 and this GPU is a NVIDIA RTX "
                     "A2000"]
    hw = fake_header(DESKTOP, flags={"hardware_compatible": True})
    assert cache.compat_problems(hw, same_cc_other_name) == []


# ==== cache naming and staleness ==========================================================
def test_cache_names(tmp_path):
    onnx_path = str(tmp_path / "camvid.onnx")
    assert cache.cache_path(onnx_path, "fp16", NANO) == str(
        tmp_path / "camvid.fp16.tegra-x1-sm53.trt8.2.1.engine")
    assert os.path.basename(cache.cache_path(onnx_path, "int8", ORIN)) == \
        "camvid.int8.orin-sm87.trt10.3.0.engine"
    assert os.path.basename(cache.cache_path(onnx_path, "fp32", DESKTOP)) == \
        "camvid.fp32.geforce-rtx-3060-sm86.trt10.3.0.engine"


def test_cache_falls_back_to_user_cache_for_read_only_model_folder(tmp_path, monkeypatch):
    ro = str(tmp_path / "ro")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if p == ro else real(p, m))
    p = cache.cache_path(os.path.join(ro, "camvid.onnx"), "fp16", NANO)
    assert p.startswith(str(tmp_path / "xdg" / "jetseg" / "engines"))
    assert p.endswith("-camvid.fp16.tegra-x1-sm53.trt8.2.1.engine")


class CountingBuild(object):
    """A build function that writes a real jetseg engine with a fake plan."""

    def __init__(self, facts):
        self.facts, self.calls = facts, []

    def __call__(self, onnx_path, out, precision):
        self.calls.append((onnx_path, out, precision))
        h = fake_header(self.facts, onnx_sha256=cache.sha256_file(onnx_path))
        h["precision"] = precision
        eng.write_engine(out, h, PLAN)


def test_engine_rebuilt_only_when_onnx_trt_gpu_or_precision_changes(tmp_path):
    model = tmp_path / "camvid.onnx"
    model.write_bytes(b"onnx v1")
    build = CountingBuild(NANO)
    p1 = cache.ensure_engine(str(model), "fp16", NANO, build)
    assert len(build.calls) == 1 and os.path.exists(p1)
    assert cache.ensure_engine(str(model), "fp16", NANO, build) == p1
    assert cache.ensure_engine(str(model), "fp16", dict(NANO, tensorrt="8.2.1.9"), build) == p1
    assert len(build.calls) == 1                          # fresh: nothing rebuilt
    model.write_bytes(b"onnx v2")                         # hash change
    assert cache.ensure_engine(str(model), "fp16", NANO, build) == p1
    assert len(build.calls) == 2
    p32 = cache.ensure_engine(str(model), "fp32", NANO, build)          # precision
    newer = CountingBuild(dict(NANO, tensorrt="8.5.2.2"))
    p85 = cache.ensure_engine(str(model), "fp16", newer.facts, newer)   # TensorRT
    xavier = dict(NANO, gpu="Xavier", compute_capability=(7, 2))
    px = cache.ensure_engine(str(model), "fp16", xavier, CountingBuild(xavier))   # GPU
    assert len({p1, p32, p85, px}) == 4
    assert cache.ensure_engine(str(model), "fp16", NANO, build, rebuild=True) == p1
    assert len(build.calls) == 4


def test_stale_reasons(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    path = str(tmp_path / "m.engine")
    assert cache.engine_is_fresh(path, "h", "fp16", NANO) == (False, "no cached engine yet")
    (tmp_path / "m.engine").write_bytes(b"plain plan")
    assert "no jetseg header" in cache.engine_is_fresh(path, "h", "fp16", NANO)[1]
    eng.write_engine(path, fake_header(NANO, onnx_sha256="h"), PLAN)
    assert cache.engine_is_fresh(path, "h", "fp16", NANO) == (True, "")
    assert "ONNX model changed" in cache.engine_is_fresh(path, "other", "fp16", NANO)[1]
    assert "built for fp16" in cache.engine_is_fresh(path, "h", "int8", NANO)[1]


# ==== atomic writes =======================================================================
def test_failed_engine_write_leaves_old_file_and_no_partial(tmp_path, monkeypatch):
    path = str(tmp_path / "m.engine")
    eng.write_engine(path, fake_header(NANO), b"OLD PLAN" * 8)
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No "
                                                                           "space left")))
    with pytest.raises(JetsegError, match="cannot write output"):
        eng.write_engine(path, fake_header(NANO), b"NEW PLAN" * 1000)
    assert eng.read_engine(path)[1] == b"OLD PLAN" * 8
    assert os.listdir(str(tmp_path)) == ["m.engine"]


def test_interrupted_engine_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        eng.write_engine(str(tmp_path / "new.engine"), fake_header(NANO), b"PLAN")
    assert os.listdir(str(tmp_path)) == []


# ==== ONNX facts from raw bytes ===========================================================
def test_onnx_metadata_and_nodes_read_without_onnx_package(tmp_path):
    meta = {"jetseg.classes": json.dumps(NAMES5), "jetseg.precision": '"int8"', "note": "é"}
    qdq = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant_in"),
           helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant_in")]
    p = onnx_with(tmp_path, qdq, meta)
    assert onnx_proto.read_onnx_metadata(p) == dict((e.key, e.value) for e in
                                             onnx.load(p).metadata_props)
    assert onnx_proto.list_onnx_nodes(p) == [("quant_in", "QuantizeLinear"),
                                      ("dequant_in", "DequantizeLinear")]
    assert onnx_proto.has_qdq(p)
    plain = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="relu_7")],
                       name="plain.onnx")
    assert not onnx_proto.has_qdq(plain) and onnx_proto.read_onnx_metadata(plain) == {}
    with pytest.raises(JetsegError, match="not a readable ONNX"):
        onnx_proto.read_onnx_metadata(b"\x0a\xff\xff\xff\xff\x0f")


def test_onnx_metadata_of_a_jetseg_export_matches_onnx(tmp_path):
    from tests.helpers.common import COLORS5
    from jetseg.core.modelinfo import ModelInfo
    from jetseg_export.compose import compose
    from tests.helpers.tinymodels import TinyNet
    p = str(tmp_path / "composed.onnx")
    onnx.save(compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5, scores=True), p)
    want = dict((e.key, e.value) for e in onnx.load(p).metadata_props)
    got = onnx_proto.read_onnx_metadata(p)
    assert got == want and "jetseg.classes" in got
    assert ModelInfo.from_metadata(got).classes == NAMES5
    assert onnx_proto.list_onnx_nodes(p) == [(n.name, n.op_type) for n in onnx.load(p).graph.node]


# ==== no TensorRT here: the errors a user sees ============================================
def _has_trt():
    try:
        import tensorrt  # noqa: F401
        return True
    except ImportError:
        return False


needs_no_trt = pytest.mark.skipif(_has_trt(), reason="TensorRT is installed here")




@needs_no_trt
def test_build_without_tensorrt_is_one_line_exit_2(tmp_path, capsys, keep_logging):
    from jetseg.cli.common import run_guarded
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], name="x.onnx")
    rc = run_guarded(build_parser(), lambda a: a.func(a), ["build", model])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "TensorRT" in err and "python3-libnvinfer" in err and "--backend onnxruntime" in err


@needs_no_trt
def test_build_subcommand_through_the_real_cli_when_wired(tmp_path):
    import jetseg.cli as cli
    try:
        cli.build_parser().parse_args(["build", "x.onnx"])
    except SystemExit:
        pytest.skip("jetseg.cli does not register trt_cli yet")
    r = run_cli("build", str(tmp_path / "x.onnx"))
    assert r.returncode == 2 and "TensorRT" in r.stderr and len(r.stderr.splitlines()) == 1


@needs_no_trt
def test_tensorrt_backend_on_onnx_and_engine_names_tensorrt_and_fix(tmp_path):
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    for path in (model, str(tmp_path / "m.engine")):
        if path.endswith(".engine"):
            eng.write_engine(path, fake_header(NANO), PLAN)
        with pytest.raises(JetsegError) as e, command_line_names():     # as jetseg says it
            open_backend(path, "tensorrt" if path.endswith(".onnx") else "auto")
        assert "TensorRT" in str(e.value) and "--backend onnxruntime" in str(e.value)
        with pytest.raises(JetsegError) as e:                           # from Python
            open_backend(path, "tensorrt" if path.endswith(".onnx") else "auto")
        assert "TensorRT" in str(e.value) and "backend='onnxruntime'" in str(e.value)


def test_auto_backend_runs_onnx_as_engine_only_on_a_jetson_with_tensorrt(tmp_path,
                                                                       monkeypatch):
    import importlib.util
    pytest.importorskip("onnxruntime")
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    from jetseg.backends import auto_backend
    here = auto_backend(model)[0]                   # this desktop: OpenVINO where it serves
    assert here in ("onnxruntime", "openvino")      # the CPU, else ONNX Runtime
    assert open_backend(model).name == here
    real_exists, real_find = os.path.exists, importlib.util.find_spec
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/etc/nv_tegra_release" or
                        real_exists(p))
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if
                        n == "tensorrt" else real_find(n, *a))
    seen = []
    monkeypatch.setattr(trtmod, "open_tensorrt", lambda path, **kw: seen.append(path) or "trt")
    assert open_backend(model) == "trt" and seen == [model]
    assert open_backend(model, providers="cpu").name == "onnxruntime"   # explicit ORT
    assert open_backend(model, "onnxruntime").name == "onnxruntime"


# ==== API-shape tests: our dispatch against recording fakes ===============================
@pytest.mark.parametrize("version,engine_cls,cdt,execute", GENERATIONS)
def test_api_shape_dispatch_per_generation(version, engine_cls, cdt, execute):
    rt, lib = emulated_runtime(integrated=False)
    net = FakeNet(classes_dtype=cdt)
    trt = fake_trt(version)
    e = engine_cls(net, trt)
    b = trtmod.TrtBackend(e, trt=trt, rt=rt, props=DESKTOP)
    assert [t.name for t in b.inputs] == ["image"] and b.inputs[0].shape == [1, 3, 4, 6]
    assert [(t.name, t.dtype) for t in b.outputs] == [("scores", "float32"),
                                                      ("classes", np.dtype(cdt).name)]
    x = frame()
    out = b.run({"image": x})
    np.testing.assert_array_equal(out["scores"], 2 * x)
    np.testing.assert_array_equal(out["classes"], x.argmax(1))
    assert out["classes"].dtype == cdt
    names = [c[0] for c in e.context.calls]
    assert execute in names
    assert ("execute_async_v2" in names) == (execute == "execute_async_v2")
    if execute == "execute_async_v2":                   # bindings in binding order, all set
        bindings = [c for c in e.context.calls if c[0] == "execute_async_v2"][0][1]
        assert len(bindings) == 3 and all(bindings)
    else:
        assert sorted(c[1] for c in e.context.calls if c[0] == "set_tensor_address") == \
            ["classes", "image", "scores"]
    assert b.last_gpu_ms == 0.25 and version in b.providers[0]
    b.close()
    assert lib.mem == {}                                # every buffer freed


@pytest.mark.parametrize("props,copies", [
    (DESKTOP, ["cudaMemcpyAsync"] * 3),                 # pinned: H2D + 2 x D2H
    (ORIN, []),                                         # mapped: zero-copy, no memcpy
    (NANO, ["cudaMemcpyAsync"] * 2),                    # mapped input, outputs copied back
])
def test_api_shape_memory_placement_and_no_per_frame_allocation(props, copies):
    rt, lib = emulated_runtime(integrated=props["integrated"],
                               cc=props["compute_capability"])
    b = trtmod.TrtBackend(Engine10(FakeNet(), fake_trt("10.3.0.30")),
                               trt=fake_trt("10.3.0.30"), rt=rt, props=props)
    allocs = [c for c in lib.calls if c in ("cudaMalloc", "cudaHostAlloc")]
    start = len(lib.calls)
    for i in range(3):
        x = frame(seed=i)
        out = b.run({"image": x})
        np.testing.assert_array_equal(out["classes"], x.argmax(1))
    per_frame = lib.calls[start:]
    assert not [c for c in per_frame if c in ("cudaMalloc", "cudaHostAlloc")]
    assert [c for c in per_frame if c.startswith("cudaMemcpy")] == copies * 3
    assert len(allocs) == 3 + sum(1 for r in ("input", "output", "output")
                                  if cuda_buffers.memory_plan(props, r) == "pinned")
    b.close()


def test_api_shape_outputs_copied_unless_reuse_requested():
    rt, _ = emulated_runtime()
    trt = fake_trt("10.3.0.30")
    b = trtmod.TrtBackend(Engine10(FakeNet(), trt), trt=trt, rt=rt, props=DESKTOP)
    first = b.run({"image": frame(seed=1)})["scores"]
    keep = first.copy()
    b.run({"image": frame(seed=2)})
    np.testing.assert_array_equal(first, keep)          # a held result is not overwritten
    r = trtmod.TrtBackend(Engine10(FakeNet(), trt), trt=trt, rt=rt, props=DESKTOP,
                                      reuse_outputs=True)
    assert r.run({"image": frame()})["scores"] is r.run({"image": frame()})["scores"]


@pytest.mark.parametrize("version,engine_cls", [("8.2.1.8", Engine82), ("10.3.0.30", Engine10)])
def test_api_shape_dynamic_input_sets_shape_and_reallocates_once_per_size(version,
                                                                          engine_cls):
    rt, lib = emulated_runtime()
    trt = fake_trt(version)
    e = engine_cls(FakeNet(dynamic=True), trt)
    b = trtmod.TrtBackend(e, trt=trt, rt=rt, props=DESKTOP)
    assert b.inputs[0].shape == [1, 3, None, None]
    setter = "set_binding_shape" if version.startswith("8") else "set_input_shape"
    for h, w in ((4, 6), (4, 6), (8, 10)):
        x = frame(h, w)
        np.testing.assert_array_equal(b.run({"image": x})["classes"], x.argmax(1))
    sets = [c for c in e.context.calls if c[0] == setter]
    assert [c[-1] for c in sets] == [(1, 3, 4, 6), (1, 3, 8, 10)]
    b.close()
    assert lib.mem == {}


def test_api_shape_bad_feeds_are_jetseg_errors():
    rt, _ = emulated_runtime()
    trt = fake_trt("10.3.0.30")
    b = trtmod.TrtBackend(Engine10(FakeNet(), trt), trt=trt, rt=rt, props=DESKTOP)
    with pytest.raises(JetsegError, match="no value for engine input 'image'"):
        b.run({})
    with pytest.raises(JetsegError, match=r"has shape \(1, 3, 5, 6\); the engine takes"):
        b.run({"image": frame(5, 6)})
    with pytest.raises(JetsegError, match="feed float32"):
        b.run({"image": frame().astype(np.complex64)})
    with pytest.raises(JetsegError, match="unknown memory placement 'gpu'"):
        trtmod.TrtBackend(Engine10(FakeNet(), trt), trt=trt, rt=rt, props=DESKTOP,
                                      memory="gpu")


def test_api_shape_unknown_generation_is_refused():
    with pytest.raises(JetsegError, match="neither the named-tensor nor the binding API"):
        tensors.make_io(fake_trt("99"), object(), object())


# ==== API-shape tests of the builder ======================================================
@pytest.fixture
def fake_platform(monkeypatch):
    return fake_platform_setter(monkeypatch)


@pytest.mark.parametrize("version,workspace_call,batch_flag", [
    ("8.2.1.8", ("config.max_workspace_size", 256 << 20), 1),
    ("10.3.0.30", ("set_memory_pool_limit", "WORKSPACE", 256 << 20), 1),
    ("11.0.0.1", ("set_memory_pool_limit", "WORKSPACE", 256 << 20), 0)])
def test_api_shape_build_engine_per_generation(tmp_path, fake_platform, version,
                                               workspace_call, batch_flag):
    from jetseg.backends.tensorrt.build import build_engine
    trt = FakeBuilderTrt(version)
    facts = fake_platform(trt, NANO if version.startswith("8") else ORIN)
    meta = {"jetseg.classes": json.dumps(NAMES5)}
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], meta)
    out = build_engine(model, precision="fp16", workspace_mb=256,
                       timing_cache=str(tmp_path / "t.cache"), facts=facts)
    # D5: strongly typed TensorRT 11 builds this fp32 ONNX as fp32, and says so
    built = "fp32" if version.startswith("11") else "fp16"
    assert out == str(tmp_path / "m.{}.engine".format(built))
    assert ("create_network", batch_flag) in trt.calls and workspace_call in trt.calls
    assert (("set_flag", "FP16") in trt.calls) == (not version.startswith("11"))
    header, plan = eng.read_engine(out)
    assert plan == trt.plans[0]                          # the plan exactly, header stripped
    assert header["metadata"] == meta and header["tensorrt"] == version
    assert header["onnx_sha256"] == cache.sha256_file(model) and header["precision"] == built
    assert header["flags"]["explicit_batch"] == bool(batch_flag)
    assert (tmp_path / "t.cache").read_bytes() == b"TIMING"
    build_engine(model, precision="fp16", timing_cache=str(tmp_path / "t.cache"), facts=facts)
    assert ("create_timing_cache", b"TIMING") in trt.calls      # the cache is read back


def test_api_shape_progress_monitor_only_where_the_api_has_one(keep_logging):
    import logging
    from jetseg.backends.tensorrt.build import attach_progress
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    keep_logging.handlers[:] = [handler]
    keep_logging.setLevel(logging.INFO)

    class IProgressMonitor(object):
        def __init__(self):
            pass
    trt10 = SimpleNamespace(IProgressMonitor=IProgressMonitor)
    config = SimpleNamespace(progress_monitor=None)
    assert attach_progress(SimpleNamespace(), config) is None           # TensorRT 8.x
    assert attach_progress(trt10, SimpleNamespace()) is None
    m = attach_progress(trt10, config)
    assert config.progress_monitor is m and isinstance(m, IProgressMonitor)
    m.phase_start("Building engine", None, 3)
    m.phase_start("Tactic timing", "Building engine", 40)
    assert m.step_complete("Building engine", 0) is True
    assert seen == ["TensorRT: Building engine (3 steps)"]


def test_api_shape_parser_errors_name_the_node(tmp_path, fake_platform):
    from jetseg.backends.tensorrt.build import build_engine
    trt = FakeBuilderTrt("8.2.1.8", parse_errors=[(1, "Unsupported ONNX op GridSample")])
    facts = fake_platform(trt, NANO)
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["r"], name="relu_1"),
                                  helper.make_node("Relu", ["r"], ["y"], name="grid_7")])
    with pytest.raises(JetsegError) as e:
        build_engine(model, facts=facts)
    assert "node 'grid_7' (Relu): Unsupported ONNX op GridSample" in str(e.value)
    assert "--target trt8.2" in str(e.value)
    assert not os.path.exists(str(tmp_path / "m.fp16.engine"))


def test_precision_decisions(tmp_path, fake_platform):
    from jetseg.backends.tensorrt.build import build_engine, precision_plan
    qdq_nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    qdq = onnx_with(tmp_path, qdq_nodes, name="q.onnx")
    plain = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], name="p.onnx")
    nano = FakeBuilderTrt("8.2.1.8", fast_fp16=True, fast_int8=False)
    facts = fake_platform(nano, NANO)
    with pytest.raises(JetsegError) as e:
        build_engine(qdq, precision="int8", facts=facts)
    assert "NVIDIA Tegra X1 (compute capability 5.3) has no fast INT8" in str(e.value)
    assert "--precision fp16" in str(e.value)
    orin = FakeBuilderTrt("10.3.0.30")
    facts = fake_platform(orin, ORIN)
    with pytest.raises(JetsegError, match="INT8 needs a quantized model"):
        build_engine(plain, precision="int8", facts=facts)
    build_engine(qdq, precision="int8", facts=facts)
    assert [c for c in orin.calls if c[0] == "set_flag"] == [("set_flag", "INT8"),
                                                             ("set_flag", "FP16")]
    trt11 = FakeBuilderTrt("11.0.0.1")
    b = trt11.Builder(None)
    assert precision_plan(trt11, b, "int8", True, ORIN) == []    # Q/DQ alone, no flag
    assert precision_plan(trt11, b, "fp16", False, ORIN) == []   # strongly typed
    assert precision_plan(orin, orin.Builder(None), "fp32", False, ORIN) == []


def test_dla_decisions(tmp_path, fake_platform):
    from jetseg.backends.tensorrt.build import build_engine
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    facts = fake_platform(FakeBuilderTrt("8.2.1.8"), NANO)
    with pytest.raises(JetsegError, match="no DLA"):
        build_engine(model, dla_core=0, facts=facts)
    xavier = FakeBuilderTrt("8.5.2.2", dla_cores=2)
    facts = fake_platform(xavier, dict(NANO, gpu="Xavier", compute_capability=(7, 2)))
    with pytest.raises(JetsegError, match="DLA cores 0..1"):
        build_engine(model, dla_core=2, facts=facts)
    with pytest.raises(JetsegError, match="DLA runs fp16 or int8"):
        build_engine(model, precision="fp32", dla_core=1, facts=facts)
    build_engine(model, dla_core=1, facts=facts)
    for call in (("config.default_device_type", "DLA"), ("config.DLA_core", 1),
                 ("set_flag", "GPU_FALLBACK")):
        assert call in xavier.calls


def test_api_shape_onnx_through_engine_cache_into_segmenter(tmp_path, fake_platform):
    """open_backend/Segmenter on an .onnx with backend="tensorrt": built once into the cache
    beside the model, reused, rebuilt when the ONNX changes; the engine's metadata (read
    from the ONNX) reaches the Segmenter."""
    from jetseg import Segmenter
    trt = FakeBuilderTrt("10.3.0.30")
    fake_platform(trt, ORIN)
    meta = {"jetseg.classes": json.dumps(["sky", "road", "car"])}
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], meta,
                       name="cam.onnx")
    seg = Segmenter(model, backend="tensorrt")
    assert seg.classes == ["sky", "road", "car"] and seg.backend.name == "tensorrt"
    cached = str(tmp_path / "cam.fp16.orin-sm87.trt10.3.0.engine")
    assert seg.backend.engine_path == cached and os.path.exists(cached)
    res = seg.process(np.zeros((4, 6, 3), np.uint8))
    assert res.classes.shape == (4, 6)
    seg.close()
    builds = lambda: sum(1 for c in trt.calls if c[0] == "build_serialized_network")  # noqa
    open_backend(model, "tensorrt").close()
    assert builds() == 1
    onnx_model = onnx.load(model)
    onnx_model.doc_string = "changed"
    onnx.save(onnx_model, model)
    b = open_backend(model, "tensorrt")
    assert builds() == 2 and json.loads(b.metadata["jetseg.precision"]) == "fp16"
    b.close()


def test_api_shape_engine_from_other_trt_is_refused_before_deserializing(tmp_path,
                                                                         fake_platform):
    trt = FakeBuilderTrt("10.3.0.30")
    fake_platform(trt, ORIN)
    p = str(tmp_path / "old.engine")
    eng.write_engine(p, fake_header(dict(ORIN, tensorrt="8.6.2.3")), PLAN)
    with pytest.raises(JetsegError, match="built by TensorRT 8.6.2.3 and this is TensorRT "
                                          "10.3.0.30.*jetseg build camvid.onnx"):
        open_backend(p)
    assert not [c for c in trt.calls if c[0] == "deserialize_cuda_engine"]
    plain = tmp_path / "plain.engine"
    plain.write_bytes(b"BAD plan")
    with pytest.raises(JetsegError, match="TensorRT could not load this engine"):
        open_backend(str(plain))
    plain.write_bytes(b"PLAN from trtexec")
    b = open_backend(str(plain))                        # plain plan: loads, no metadata
    assert b.metadata == {} and b.header is None
    assert ("deserialize_cuda_engine", b"PLAN from trtexec") in trt.calls
    b.close()


# ==== issue 11 defects ====================================================================
def _warnings(log):
    import logging
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING)
    return seen


def test_d4_engine_written_before_timing_cache_and_a_bad_cache_is_a_warning(
        tmp_path, fake_platform, keep_logging):
    seen = _warnings(keep_logging)
    trt = FakeBuilderTrt("10.3.0.30")
    facts = fake_platform(trt, ORIN)
    trt.Config.set_timing_cache = lambda self, c, ignore: (
        trt.calls.append(("set_timing_cache", c)) or c != "from-damaged-blob")
    trt.Config.create_timing_cache = lambda self, blob: (
        trt.calls.append(("create_timing_cache", bytes(blob))) or
        ("from-damaged-blob" if blob else "empty"))
    trt.Config.get_timing_cache = lambda self: None        # TensorRT handed nothing back
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])])
    cache_file = tmp_path / "t.cache"
    cache_file.write_bytes(b"damaged timing cache")
    out = build_engine_for_test(model, facts, timing_cache=str(cache_file))
    header, plan = eng.read_engine(out)                  # the finished engine was kept
    assert plan == trt.plans[0] and header["precision"] == "fp16"
    assert ("create_timing_cache", b"") in trt.calls     # refused cache -> an empty one
    assert [c for c in trt.calls if c[0] == "set_timing_cache"][-1] == \
        ("set_timing_cache", "empty")
    assert any("cannot use the timing cache" in w for w in seen)
    assert any("timing cache" in w and "not saved" in w for w in seen)
    assert cache_file.read_bytes() == b"damaged timing cache"     # left alone


def build_engine_for_test(model, facts, **kw):
    from jetseg.backends.tensorrt.build import build_engine
    return build_engine(model, facts=facts, **kw)


def _fp16_onnx(tmp_path, name="half.onnx"):
    """A graph whose weights are float16 between float32 I/O casts, as ONNX Runtime's
    float16 converter (what jetseg export --precision fp16 uses) leaves it."""
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float16), "w")
    nodes = [helper.make_node("Cast", ["x"], ["xh"], to=onnx.TensorProto.FLOAT16),
             helper.make_node("Conv", ["xh", "w"], ["yh"]),
             helper.make_node("Cast", ["yh"], ["y"], to=onnx.TensorProto.FLOAT)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", onnx.TensorProto.FLOAT, [1, 3, 4, 6])], [helper.make_tensor_value_info(
            "y", onnx.TensorProto.FLOAT, [1, 3, 4, 6])], [w])
    p = str(tmp_path / name)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    return p


def test_d5_graph_precision_from_the_weights(tmp_path):
    from tests.helpers.tinymodels import TinyNet
    fp32 = TinyNet(width=32, height=24).save(tmp_path / "tiny.onnx")
    assert onnx_proto.graph_precision(fp32) == "fp32"
    assert onnx_proto.graph_precision(_fp16_onnx(tmp_path)) == "fp16"
    pytest.importorskip("onnxruntime.transformers.float16")
    from onnxruntime.transformers.float16 import convert_float_to_float16
    half = convert_float_to_float16(onnx.load(fp32), keep_io_types=True)
    onnx.save(half, str(tmp_path / "tiny16.onnx"))
    assert onnx_proto.graph_precision(str(tmp_path / "tiny16.onnx")) == "fp16"
    qdq = onnx_with(tmp_path, [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
                    name="q.onnx")
    assert onnx_proto.graph_precision(qdq) == "int8"


def test_d5_strongly_typed_tensorrt_records_the_precision_it_builds(tmp_path, fake_platform,
                                                                   keep_logging):
    seen = _warnings(keep_logging)
    trt11 = FakeBuilderTrt("11.0.0.1")
    facts = fake_platform(trt11, ORIN)
    fp32 = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], name="cam.onnx")
    out = build_engine_for_test(fp32, facts, precision="fp16")
    assert out.endswith("cam.fp32.engine") and eng.read_header(out)["precision"] == "fp32"
    assert any("the engine is fp32, not fp16" in w for w in seen)
    b = open_backend(fp32, "tensorrt")                    # the cache says it too
    assert ".fp32.orin-sm87." in b.engine_path and b.metadata["jetseg.precision"] == '"fp32"'
    b.close()
    half = _fp16_onnx(tmp_path)
    out = build_engine_for_test(half, facts)
    assert eng.read_header(out)["precision"] == "fp16" and out.endswith("half.fp16.engine")
    assert not [c for c in trt11.calls if c[0] == "set_flag"]     # no flags: its own types
    trt10 = FakeBuilderTrt("10.3.0.30")                   # weakly typed: flags choose
    facts = fake_platform(trt10, ORIN)
    out = build_engine_for_test(half, facts, precision="fp32", out=str(tmp_path / "h.engine"))
    assert eng.read_header(out)["precision"] == "fp16" and ("set_flag", "FP16") in trt10.calls


def test_d6_dla_core_set_on_the_runtime_before_deserializing(tmp_path, fake_platform):
    trt = FakeBuilderTrt("8.5.2.2", dla_cores=2)
    fake_platform(trt, dict(NANO, gpu="Xavier", compute_capability=(7, 2)))
    p = str(tmp_path / "dla.engine")
    eng.write_engine(p, fake_header(dict(NANO, tensorrt="8.5.2.2", gpu="Xavier",
                                         compute_capability=(7, 2)),
                                    flags={"dla_core": 1}), PLAN)
    open_backend(p).close()
    names = [c[0] for c in trt.calls]
    assert ("runtime.DLA_core", 1) in trt.calls
    assert names.index("runtime.DLA_core") < names.index("deserialize_cuda_engine")
    trt.calls[:] = []
    p2 = str(tmp_path / "gpu.engine")
    eng.write_engine(p2, fake_header(dict(NANO, tensorrt="8.5.2.2", gpu="Xavier",
                                          compute_capability=(7, 2))), PLAN)
    open_backend(p2).close()
    assert not [c for c in trt.calls if c[0] == "runtime.DLA_core"]


def test_d9_close_drops_every_tensorrt_reference():
    import gc
    import weakref
    rt, lib = emulated_runtime()
    trt = fake_trt("10.3.0.30")
    e = Engine10(FakeNet(), trt)
    ref = weakref.ref(e)
    b = trtmod.TrtBackend(e, trt=trt, rt=rt, props=DESKTOP)
    b.run({"image": frame()})
    del e
    b.close()
    gc.collect()
    assert ref() is None and b.io is None and b.context is None and lib.mem == {}


def test_d9_a_refused_tensor_address_is_an_error():
    from tests.helpers.trt_fakes import Context10

    class Refusing(Context10):
        def set_tensor_address(self, name, ptr):
            return False
    rt, _ = emulated_runtime()
    trt = fake_trt("10.3.0.30")
    e = Engine10(FakeNet(), trt)
    with pytest.raises(JetsegError, match="refused the buffer address for tensor 'image'"):
        trtmod.TrtBackend(e, trt=trt, rt=rt, props=DESKTOP, context=Refusing(e.net))


def _raw_engine(tmp_path, header_text, plan=PLAN, name="bad.engine"):
    blob = header_text.encode("utf-8")
    p = tmp_path / name
    p.write_bytes(eng.MAGIC + eng._LEN.pack(len(blob)) + blob + plan)
    return str(p)


def _good_header_json(**changes):
    h = fake_header(NANO, onnx_sha256="h")
    h.update(changes)
    return json.dumps(h)


@pytest.mark.parametrize("text,why", [
    ('{"format": 1, "x": ' + "[" * 200000 + "]" * 200000 + "}", "not valid JSON"),
    (_good_header_json(compute_capability="abc"), "compute_capability is 'abc'"),
    (_good_header_json(compute_capability={}), "compute_capability is {}"),
    (_good_header_json(compute_capability=[8]), "compute_capability is [8]"),
    (_good_header_json(compute_capability=[8, "x"]), "compute_capability"),
    (_good_header_json(flags=["dla_core", 1]), "flags are not a JSON object"),
    (_good_header_json(metadata="jetseg.classes"), "metadata is not a map of strings"),
    (_good_header_json(metadata={"jetseg.classes": ["sky"]}), "metadata is not a map"),
    (_good_header_json(format="2"), "header format is '2'"),
    (_good_header_json(format=True), "header format is True"),
    (_good_header_json(tensorrt=8.2), "tensorrt is 8.2, not text"),
    (_good_header_json(precision="fp8"), "unknown precision 'fp8'"),
    (_good_header_json(plan_size=7), "the plan is 128 bytes and its header says 7"),
    ("[1, 2]", "not a JSON object"),
])
def test_d10_damaged_headers_are_jetseg_errors_and_stale_never_tracebacks(tmp_path, text, why):
    p = _raw_engine(tmp_path, text)
    for read in (eng.read_engine, eng.read_header, eng.describe_engine_file):
        with pytest.raises(JetsegError, match=re.escape(why)) as e:
            read(p)
        assert "jetseg build" in str(e.value)
    fresh, reason = cache.engine_is_fresh(p, "h", "fp16", NANO)
    assert fresh is False and reason.startswith("stale: the cached engine is unreadable")
    try:
        header = json.loads(text)
    except RecursionError:
        return
    if isinstance(header, dict) and "plan_size" not in header:
        with pytest.raises(JetsegError):        # the same header handed to the guard itself
            cache.check_engine(header, NANO, p)


@pytest.mark.parametrize("plan,why", [(b"", "plan after it is missing"),
                                      (b"P", "a 1-byte plan cannot be a TensorRT engine")])
def test_d10_a_header_without_a_real_plan_is_not_fresh(tmp_path, plan, why):
    p = _raw_engine(tmp_path, _good_header_json(), plan=plan)
    fresh, reason = cache.engine_is_fresh(p, "h", "fp16", NANO)
    assert fresh is False and why in reason
    with pytest.raises(JetsegError, match=why):
        eng.read_engine(p)


def test_d10_a_damaged_cached_engine_is_rebuilt_not_a_crash(tmp_path):
    model = tmp_path / "camvid.onnx"
    model.write_bytes(b"onnx v1")
    build = CountingBuild(NANO)
    p = cache.ensure_engine(str(model), "fp16", NANO, build)
    _raw_engine(tmp_path, _good_header_json(compute_capability="abc"),
                name=os.path.basename(p))
    assert cache.ensure_engine(str(model), "fp16", NANO, build) == p
    assert len(build.calls) == 2 and eng.read_header(p)["compute_capability"] == [5, 3]


@needs_no_trt
def test_d10_engine_facts_read_without_tensorrt(tmp_path):
    p = eng.write_engine(str(tmp_path / "m.engine"), fake_header(
        NANO, flags={"workspace_mb": 512, "dla_core": 0, "timing_cache": False}), PLAN)
    lines = dict(eng.describe_engine_file(p))
    assert lines["engine"].startswith("jetseg engine") and lines["tensorrt"] == "8.2.1.8"
    assert lines["gpu"] == "NVIDIA Tegra X1 (compute capability 5.3)"
    assert lines["precision"] == "fp16"
    assert lines["flags"] == '{"dla_core": 0, "workspace_mb": 512}'
    plain = tmp_path / "trtexec.plan"
    plain.write_bytes(PLAN)
    assert dict(eng.describe_engine_file(str(plain)))["engine"].startswith("plain TensorRT")
    with pytest.raises(JetsegError, match="model file not found"):
        eng.describe_engine_file(str(tmp_path / "none.engine"))


# ==== plain plans with a sidecar (jetseg build --plain) ===================================
def test_plain_build_writes_a_bare_plan_and_sidecar_that_the_runtime_and_guard_read(
        tmp_path, fake_platform):
    trt = FakeBuilderTrt("10.3.0.30")
    facts = fake_platform(trt, ORIN)
    meta = {"jetseg.classes": json.dumps(["sky", "road", "car"])}
    model = onnx_with(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], meta, "cam.onnx")
    out = build_engine_for_test(model, facts, precision="fp16", plain=True,
                                out=str(tmp_path / "cam.plan"))
    with open(out, "rb") as f:
        assert f.read() == trt.plans[0]                 # byte for byte what TensorRT wrote
    side = json.loads((tmp_path / "cam.plan.json").read_text())
    assert side["metadata"] == meta and side["tensorrt"] == "10.3.0.30"
    assert side["plan_size"] == len(trt.plans[0]) and side["precision"] == "fp16"
    assert dict(eng.describe_engine_file(out))["engine"].startswith("plain TensorRT plan "
                                                                     "with facts")
    b = open_backend(out)                               # runtime: facts from the sidecar
    assert b.header["onnx_sha256"] == cache.sha256_file(model)
    assert json.loads(b.metadata["jetseg.classes"]) == ["sky", "road", "car"]
    b.close()
    assert cache.engine_is_fresh(out, cache.sha256_file(model), "fp16", facts) == (True, "")
    fake_platform(FakeBuilderTrt("10.4.0.1"), ORIN)     # guard: another TensorRT
    with pytest.raises(JetsegError, match="built by TensorRT 10.3.0.30 and this is TensorRT "
                                          r"10.4.0.1.*--plain -o"):
        open_backend(out)
    fake_platform(trt, ORIN)
    with open(out, "r+b") as f:                         # the plan replaced, sidecar left over
        f.write(b"X")
    with pytest.raises(JetsegError, match="describes another plan"):
        open_backend(out)
    assert build_parser().parse_args(["build", model, "--plain"]).plain is True


@needs_no_trt
def test_d10_jetseg_info_shows_an_engines_facts_without_tensorrt(tmp_path):
    meta = {"jetseg.classes": json.dumps(NAMES5), "jetseg.precision": json.dumps("fp16")}
    h = dict(fake_header(NANO), metadata=meta)
    p = eng.write_engine(str(tmp_path / "m.engine"), h, PLAN)
    r = run_cli("info", p)
    assert r.returncode == 0, r.stderr
    assert "tensorrt:  8.2.1.8" in r.stdout and "NVIDIA Tegra X1" in r.stdout
    assert "tensors:   not listed here" in r.stdout and "TensorRT" in r.stdout
    assert "classes:   " + ", ".join(NAMES5) in r.stdout
