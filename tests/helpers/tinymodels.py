"""Tiny ONNX segmentation nets built with onnx.helper, and their plain numpy references.

The net: Conv3x3(3->8, pad 1) -> Relu -> AveragePool(k, stride k) -> Conv1x1(8->C), i.e.
NCHW float in, logits at 1/k of the input resolution out, like a real FCN's coarse output.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class TinyNet(object):
    def __init__(self, num_classes=5, width=32, height=24, down=4, seed=0, hidden=8,
                 input_name="input_0", output_name="output_0", dynamic=False):
        rng = np.random.RandomState(seed)
        self.num_classes, self.width, self.height, self.down = num_classes, width, height, down
        self.w1 = rng.randn(hidden, 3, 3, 3).astype(np.float32) * 0.5
        self.b1 = rng.randn(hidden).astype(np.float32) * 0.1
        self.w2 = rng.randn(num_classes, hidden, 1, 1).astype(np.float32)
        self.b2 = rng.randn(num_classes).astype(np.float32) * 0.1
        self.input_name, self.output_name = input_name, output_name
        self.dynamic = dynamic

    def onnx(self, opset=OPSET):
        H, W = ("H", "W") if self.dynamic else (self.height, self.width)
        oh, ow = ("h", "w") if self.dynamic else (self.height // self.down, self.width // self.down)
        inits = [numpy_helper.from_array(a, n) for a, n in
                 ((self.w1, "w1"), (self.b1, "b1"), (self.w2, "w2"), (self.b2, "b2"))]
        k = self.down
        nodes = [
            helper.make_node("Conv", [self.input_name, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[k, k], strides=[k, k]),
            helper.make_node("Conv", ["p1", "w2", "b2"], [self.output_name]),
        ]
        g = helper.make_graph(
            nodes, "tiny",
            [helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, [1, 3, H, W])],
            [helper.make_tensor_value_info(self.output_name, TensorProto.FLOAT,
                                           [1, self.num_classes, oh, ow])], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m

    def save(self, path, **kw):
        onnx.save(self.onnx(**kw), str(path))
        return str(path)

    # ---- numpy reference -------------------------------------------------------------
    def logits(self, x):
        """x: [3,H,W] float32 normalised -> [C,H/k,W/k] (plain numpy)."""
        _, H, W = x.shape
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
        c1 = np.zeros((self.w1.shape[0], H, W), np.float64)
        for dy in range(3):
            for dx in range(3):
                c1 += np.einsum("oc,chw->ohw", self.w1[:, :, dy, dx], xp[:, dy:dy + H, dx:dx + W])
        c1 += self.b1[:, None, None]
        r1 = np.maximum(c1, 0)
        k = self.down
        p1 = r1[:, :H // k * k, :W // k * k].reshape(r1.shape[0], H // k, k, W // k, k).mean(axis=(2, 4))
        out = np.einsum("oc,chw->ohw", self.w2[:, :, 0, 0], p1) + self.b2[:, None, None]
        return out.astype(np.float32)


def normalise(frame_bgr, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), order="RGB"):
    """The textbook preprocessing, written independently of jetseg: [3,H,W] float32."""
    x = frame_bgr[:, :, ::-1] if order == "RGB" else frame_bgr
    x = (x.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    return x.transpose(2, 0, 1).astype(np.float32)


def colour_frame(width, height, seed=0):
    """A structured test frame: smooth gradients plus blocks, so classes vary spatially."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                    ((xx + yy) * 3) % 256], axis=2).astype(np.int32)
    img += rng.randint(-20, 20, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
