"""Recording stand-ins for TensorRT's API generations, shared by the TensorRT tests.

They mimic each generation's method NAMES only (8.2: bindings + execute_async_v2; 8.5: both;
10: named tensors + execute_async_v3; 11: no FP16/INT8 builder flags, no EXPLICIT_BATCH) and
record every call. They prove which calls jetseg makes and in what order, never that
TensorRT accepts them; tests/test_trt_bindings.py checks the names against NVIDIA's compiled
bindings, and only a Jetson (jetseg doctor --selftest) runs them for real.
"""
import ctypes
import json
from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from jetseg.backends import cuda
from jetseg.backends.tensorrt import engine_file as eng, platform as plat
from tests.helpers.cuda_emulator import emulated_runtime

PLAN = b"PLAN" * 32     # a stand-in plan: as long as the smallest plan TensorRT could write
NANO = {"tensorrt": "8.2.1.8", "gpu": "NVIDIA Tegra X1", "compute_capability": (5, 3),
        "integrated": True, "can_map_host_memory": True, "cuda": "10.2"}
ORIN = {"tensorrt": "10.3.0.30", "gpu": "Orin", "compute_capability": (8, 7),
        "integrated": True, "can_map_host_memory": True, "cuda": "12.6"}
DESKTOP = {"tensorrt": "10.3.0.30", "gpu": "NVIDIA GeForce RTX 3060",
           "compute_capability": (8, 6), "integrated": False, "can_map_host_memory": True}


def header(facts, **kw):
    return eng.make_header({}, tensorrt=facts["tensorrt"], gpu=facts["gpu"],
                           compute_capability=facts["compute_capability"],
                           precision="fp16", source="camvid.onnx", **kw)


def onnx_with(tmp_path, nodes, meta=None, name="m.onnx"):
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 6])],
                          [numpy_helper.from_array(np.float32(0.5), "s"),
                           numpy_helper.from_array(np.int8(0), "z"),
                           numpy_helper.from_array(np.zeros(5000, np.float32), "big")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    p = str(tmp_path / name)
    onnx.save(m, p)
    return p


def view(addr, shape, dtype):
    n = int(np.prod(shape))
    raw = (ctypes.c_uint8 * (n * np.dtype(dtype).itemsize)).from_address(addr)
    return np.frombuffer(raw, dtype, n).reshape(shape)


class FakeNet(object):
    """What the fake engines 'compute': scores = 2 * image, classes = argmax over C."""

    def __init__(self, h=4, w=6, dynamic=False, classes_dtype=np.int64):
        self.h, self.w, self.dynamic, self.cdt = h, w, dynamic, classes_dtype
        self.names = ["image", "scores", "classes"]
        self.set_shape = None
        self.executions = 0

    def engine_shape(self, name):
        h, w = (-1, -1) if self.dynamic else (self.h, self.w)
        return {"image": (1, 3, h, w), "scores": (1, 3, h, w), "classes": (1, h, w)}[name]

    def context_shape(self, name):
        if self.dynamic and self.set_shape is None:
            return self.engine_shape(name)
        h, w = (self.set_shape[2], self.set_shape[3]) if self.dynamic else (self.h, self.w)
        return {"image": (1, 3, h, w), "scores": (1, 3, h, w), "classes": (1, h, w)}[name]

    def dtype(self, name):
        return {"image": np.float32, "scores": np.float32, "classes": self.cdt}[name]

    def compute(self, addr):
        x = view(addr["image"], self.context_shape("image"), np.float32)
        view(addr["scores"], self.context_shape("scores"), np.float32)[...] = 2 * x
        view(addr["classes"], self.context_shape("classes"), self.cdt)[...] = x.argmax(1)
        self.executions += 1
        return True


class Context10(object):
    def __init__(self, net):
        self.net, self.calls, self.addr = net, [], {}

    def set_input_shape(self, name, shape):
        self.calls.append(("set_input_shape", name, tuple(shape)))
        self.net.set_shape = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.net.context_shape(name)

    def set_tensor_address(self, name, ptr):
        self.calls.append(("set_tensor_address", name))
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        self.calls.append(("execute_async_v3", stream_handle))
        return self.net.compute(self.addr)


class Engine10(object):
    """Named-tensor generation (TensorRT 10): no binding methods at all."""

    def __init__(self, net, trt):
        self.net, self.trt = net, trt
        self.num_io_tensors = 3

    def get_tensor_name(self, i):
        return self.net.names[i]

    def get_tensor_mode(self, name):
        m = self.trt.TensorIOMode
        return m.INPUT if name == "image" else m.OUTPUT

    def get_tensor_shape(self, name):
        return self.net.engine_shape(name)

    def get_tensor_dtype(self, name):
        return self.net.dtype(name)

    def create_execution_context(self):
        self.context = Context10(self.net)
        return self.context


class Context82(object):
    def __init__(self, net):
        self.net, self.calls = net, []

    def set_binding_shape(self, index, shape):
        self.calls.append(("set_binding_shape", index, tuple(shape)))
        self.net.set_shape = tuple(shape)
        return True

    def get_binding_shape(self, index):
        return self.net.context_shape(self.net.names[index])

    def execute_async_v2(self, bindings, stream_handle):
        self.calls.append(("execute_async_v2", list(bindings), stream_handle))
        return self.net.compute(dict(zip(self.net.names, bindings)))


class Engine82(object):
    """Binding-index generation (TensorRT 8.2, JetPack 4.6)."""

    def __init__(self, net, trt=None):
        self.net = net
        self.num_bindings = 3

    def get_binding_name(self, i):
        return self.net.names[i]

    def binding_is_input(self, i):
        return i == 0

    def get_binding_shape(self, i):
        return self.net.engine_shape(self.net.names[i])

    def get_binding_dtype(self, i):
        return self.net.dtype(self.net.names[i])

    def create_execution_context(self):
        self.context = Context82(self.net)
        return self.context


class Context85(Context10, Context82):
    def __init__(self, net):
        Context10.__init__(self, net)


class Engine85(Engine10, Engine82):
    """TensorRT 8.5: both generations present; jetseg must pick the named tensors."""

    def __init__(self, net, trt):
        Engine10.__init__(self, net, trt)
        self.num_bindings = 3

    def create_execution_context(self):
        self.context = Context85(self.net)
        return self.context


def fake_trt(version):
    return SimpleNamespace(__version__=version, nptype=lambda t: t,
                           TensorIOMode=SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"))


GENERATIONS = [("8.2.1.8", Engine82, np.int32, "execute_async_v2"),
               ("8.5.2.2", Engine85, np.int32, "execute_async_v3"),
               ("10.3.0.30", Engine10, np.int64, "execute_async_v3")]


def frame(h=4, w=6, seed=0):
    return np.random.RandomState(seed).rand(1, 3, h, w).astype(np.float32)


class FakeBuilderTrt(object):
    """Mimics the names the builder path uses in one TensorRT generation and records every
    call; ``Runtime`` hands back a fake engine of that generation."""

    def __init__(self, version, fast_fp16=True, fast_int8=True, dla_cores=0, parse_errors=()):
        gen = int(version.split(".")[0]) * 10 + int(version.split(".")[1])
        self.__version__, self.calls = version, []
        self.nptype = lambda t: t
        self.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, lvl: None})
        if gen < 110:
            self.NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=0)
            self.BuilderFlag = SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32",
                                               GPU_FALLBACK="GPU_FALLBACK")
        else:
            self.BuilderFlag = SimpleNamespace(GPU_FALLBACK="GPU_FALLBACK", TF32="TF32")
        if gen >= 84:
            self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.DeviceType = SimpleNamespace(DLA="DLA", GPU="GPU")
        self.gen, self.fast = gen, (fast_fp16, fast_int8)
        self.dla_cores, self.parse_errors = dla_cores, list(parse_errors)
        self.engine_cls = Engine82 if gen < 85 else Engine10
        self.net = FakeNet          # what deserialised engines compute
        self.plans = []
        trt = self

        class Config(object):
            def __init__(self):
                self.flags, self.cache_blob = [], None
                if trt.gen < 84:
                    self.max_workspace_size = 0

            def set_flag(self, f):
                trt.calls.append(("set_flag", f))
                self.flags.append(f)

            def clear_flag(self, f):
                trt.calls.append(("clear_flag", f))

            def create_timing_cache(self, blob):
                trt.calls.append(("create_timing_cache", bytes(blob)))
                return "cache"

            def set_timing_cache(self, cache, ignore_mismatch):
                trt.calls.append(("set_timing_cache", cache, ignore_mismatch))
                return True

            def get_timing_cache(self):
                return SimpleNamespace(serialize=lambda: b"TIMING")

            def add_optimization_profile(self, p):
                trt.calls.append(("add_optimization_profile",))

            def __setattr__(self, k, v):
                if k not in ("flags", "cache_blob"):
                    trt.calls.append(("config." + k, v))
                object.__setattr__(self, k, v)

        if gen >= 84:
            Config.set_memory_pool_limit = lambda s, pool, n: trt.calls.append(
                ("set_memory_pool_limit", pool, n))
        self.Config = Config

    def Builder(self, logger):
        trt = self
        b = SimpleNamespace(num_DLA_cores=self.dla_cores)
        if self.gen < 110:
            b.platform_has_fast_fp16, b.platform_has_fast_int8 = self.fast
        b.create_network = lambda flags: (trt.calls.append(("create_network", flags)) or
                                          SimpleNamespace(num_inputs=1, get_input=lambda i:
                                          SimpleNamespace(name="x", shape=(1, 3, 4, 6))))
        b.create_builder_config = lambda: trt.Config()

        def build(network, config):
            trt.calls.append(("build_serialized_network",))
            plan = b"PLAN:" + json.dumps(config.flags).encode() + PLAN
            trt.plans.append(plan)
            return plan
        b.build_serialized_network = build
        return b

    def OnnxParser(self, network, logger):
        errors = self.parse_errors

        def error(i):
            idx, desc = errors[i]
            return SimpleNamespace(node=lambda: idx, desc=lambda: desc)
        return SimpleNamespace(parse_from_file=lambda p: not errors, num_errors=len(errors),
                               get_error=error)

    def Runtime(self, logger):
        trt = self

        class Runtime(object):
            def __setattr__(self, k, v):
                trt.calls.append(("runtime." + k, v))
                object.__setattr__(self, k, v)

            def deserialize_cuda_engine(self, plan):
                trt.calls.append(("deserialize_cuda_engine", bytes(plan)))
                return None if plan.startswith(b"BAD") else trt.engine_cls(trt.net(), trt)
        return Runtime()


def fake_platform(monkeypatch):
    """Route import_tensorrt / platform_facts / cuda.runtime to fakes; returns a setter
    ``use(trt, facts) -> facts``; ``use.state["lib"]`` is the emulated libcudart."""
    state = {}

    def use(trt, facts):
        rt, lib = emulated_runtime(integrated=facts["integrated"],
                                   cc=facts["compute_capability"])
        state.update(trt=trt, facts=dict(facts, tensorrt=trt.__version__), lib=lib, rt=rt)
        monkeypatch.setattr(plat, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(plat, "platform_facts", lambda t=None, r=None: state["facts"])
        monkeypatch.setattr(plat, "_LOGGER", [])
        monkeypatch.setattr(cuda, "runtime", lambda: rt)
        return state["facts"]
    use.state = state
    return use
