"""A TensorRT engine's I/O tensors: the two API generations, and the memory behind them.

Which TensorRT API is used is found by feature detection, not version numbers:
- named tensors (TRT 8.5+, the only API from 10): ``num_io_tensors``, ``get_tensor_name``,
  ``get_tensor_mode``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``;
- binding indices (TRT 8.2/8.4, the Nano's JetPack 4.6): ``num_bindings``,
  ``get_binding_name``, ``binding_is_input``, ``set_binding_shape``, ``execute_async_v2``.
"""
from jetseg.errors import JetsegError


def _dims(shape):
    return tuple(int(d) for d in shape)


def _bad_shape(name, shape):
    return JetsegError("the engine does not accept input {} of shape {}".format(
        name, tuple(shape)), fix="feed the size the engine was built for")


class NamedTensorIO(object):
    """TensorRT 8.5+ named-tensor API (``execute_async_v3``)."""
    kind = "named tensors (execute_async_v3)"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context

    def tensors(self):
        out = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            out.append((name, is_input, _dims(self.engine.get_tensor_shape(name)),
                        self.engine.get_tensor_dtype(name)))
        return out

    def set_input_shape(self, name, shape):
        if not self.context.set_input_shape(name, tuple(shape)):
            raise _bad_shape(name, shape)

    def shape(self, name):
        return _dims(self.context.get_tensor_shape(name))

    def set_address(self, name, ptr):
        if self.context.set_tensor_address(name, int(ptr)) is False:
            raise JetsegError("TensorRT refused the buffer address for tensor {!r} (its "
                              "message above says why)".format(name),
                              fix="this is a jetseg bug if the engine loaded: please report "
                                  "it with the TensorRT message")

    def execute(self, stream):
        return self.context.execute_async_v3(stream)


class BindingIO(object):
    """TensorRT 8.2/8.4 binding-index API (``execute_async_v2``)."""
    kind = "bindings (execute_async_v2)"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context
        self.index = dict((engine.get_binding_name(i), i) for i in range(engine.num_bindings))
        self.bindings = [0] * engine.num_bindings

    def tensors(self):
        out = []
        for i in range(self.engine.num_bindings):
            out.append((self.engine.get_binding_name(i), bool(self.engine.binding_is_input(i)),
                        _dims(self.engine.get_binding_shape(i)),
                        self.engine.get_binding_dtype(i)))
        return out

    def set_input_shape(self, name, shape):
        if not self.context.set_binding_shape(self.index[name], tuple(shape)):
            raise _bad_shape(name, shape)

    def shape(self, name):
        return _dims(self.context.get_binding_shape(self.index[name]))

    def set_address(self, name, ptr):
        self.bindings[self.index[name]] = int(ptr)

    def execute(self, stream):
        return self.context.execute_async_v2(list(self.bindings), stream)


def make_io(trt, engine, context):
    """The named-tensor API where the engine and context have it, else bindings."""
    if (hasattr(engine, "num_io_tensors") and hasattr(context, "execute_async_v3")
            and hasattr(context, "set_tensor_address")):
        return NamedTensorIO(trt, engine, context)
    if hasattr(engine, "num_bindings") and hasattr(context, "execute_async_v2"):
        return BindingIO(trt, engine, context)
    raise JetsegError("this TensorRT ({}) has neither the named-tensor nor the binding API "
                      "jetseg knows".format(getattr(trt, "__version__", "?")),
                      fix="use TensorRT 8.2 to 11 (JetPack 4.6 to 6)")


_DTYPE_NAMES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt, dtype):
    """TensorRT DataType -> numpy dtype name (trt.nptype where it knows the type)."""
    import numpy as np
    try:
        return np.dtype(trt.nptype(dtype)).name
    except (TypeError, KeyError, AttributeError, ValueError):
        key = str(dtype).rsplit(".", 1)[-1].upper()
        if key in _DTYPE_NAMES:
            return _DTYPE_NAMES[key]
        raise JetsegError("tensor type {} is not supported by jetseg".format(dtype),
                          fix="export the model with float32/uint8 inputs and "
                              "float/int outputs")


class Slot(object):
    """One I/O tensor's memory: "mapped" (zero-copy), "pinned" (+ device buffer) or
    "pageable" (device buffer + ordinary host array: Tegra outputs without I/O coherency)."""

    def __init__(self, rt, shape, dtype, mode):
        import numpy as np
        from jetseg.backends.cuda_buffers import DeviceBuffer, HostBuffer
        self.rt, self.shape, self.dtype, self.mode = rt, tuple(shape), np.dtype(dtype), mode
        self.host = self.dev = None
        if mode == "pageable":
            self.array = np.empty(self.shape, self.dtype)
        else:
            self.host = HostBuffer(self.shape, self.dtype, mapped=(mode == "mapped"), rt=rt)
            self.array = self.host.array
        if mode == "mapped":
            self.device_ptr = self.host.device_ptr
        else:
            self.dev = DeviceBuffer(self.array.nbytes, rt=rt)
            self.device_ptr = self.dev.ptr

    def upload(self, stream):
        if self.dev is not None:
            self.dev.copy_from(self.array, stream)

    def download(self, stream):
        if self.dev is not None:
            self.dev.copy_to(self.array, stream)

    def free(self):
        if self.dev is not None:
            self.dev.free()
        if self.host is not None:
            self.host.free()
        self.array = None
