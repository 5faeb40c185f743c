"""The zoo: mainstream segmentation nets, built as their users build them, exported at the
sizes people use to each desktop / Jetson target and checked against PyTorch.

segmentation_models_pytorch (PSPNet, UPerNet, SegFormer MiT-B0, DeepLabV3+, U-Net++, FPN) and a
Hugging Face SegformerForSemanticSegmentation from a config, all with random weights (nothing
is downloaded: encoder_weights=None, HF_HUB_OFFLINE=1 and no socket may connect while they are
built). Small decoders keep the CI cost down; the layers that made exports fail are all there:
pyramid pooling whose bins do not divide the feature map, LayerNormalization for TensorRT 8.5,
Hugging Face's output object with logits at 1/4 resolution.
"""
import logging
import os
import socket

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
smp = pytest.importorskip("segmentation_models_pytorch")
transformers = pytest.importorskip("transformers")

from jetseg.core.segmenter import Segmenter  # noqa: E402
from jetseg_export import exporter, parity  # noqa: E402
from jetseg_export.targets import TARGETS  # noqa: E402

from tests.helpers.exportnets import MEAN, STD, frame_at, load, meta, vary  # noqa: E402

K = 5                                   # classes
SIZES = [(512, 256), (384, 288)]        # 2:1 and 4:3; both multiples of 32 as smp asks
ZOO_TARGETS = ["onnxruntime", "trt8.5", "trt10"]


def _smp(arch, encoder, **kw):
    def build():
        return getattr(smp, arch)(encoder, encoder_weights=None, classes=K, **kw)
    return build


def _hf_segformer():
    cfg = transformers.SegformerConfig(num_labels=K, depths=[1, 1, 1, 1],
                                       hidden_sizes=[16, 32, 64, 128],
                                       num_attention_heads=[1, 1, 2, 4],
                                       decoder_hidden_size=64,
                                       # its default 0.02 makes one class win everywhere
                                       initializer_range=0.2)
    return transformers.SegformerForSemanticSegmentation(cfg)


ZOO = {
    "pspnet": _smp("PSPNet", "resnet18", psp_out_channels=64),
    "upernet": _smp("UPerNet", "resnet18", decoder_channels=64),
    "segformer-mit_b0": _smp("Segformer", "mit_b0", decoder_segmentation_channels=64),
    "deeplabv3plus": _smp("DeepLabV3Plus", "resnet18", decoder_channels=64),
    "unetplusplus": _smp("UnetPlusPlus", "resnet18", encoder_depth=4,
                         decoder_channels=(32, 16, 16, 8)),
    "fpn": _smp("FPN", "resnet18", decoder_pyramid_channels=64,
                decoder_segmentation_channels=32),
    "hf-segformer": _hf_segformer,
}


@pytest.fixture(scope="module")
def zoo():
    """name -> net, built once, with every socket connection refused while building."""
    nets = {}

    def refuse(*a, **k):
        raise OSError("the zoo must not download anything")

    def get(name):
        if name not in nets:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(socket.socket, "connect", refuse)
                torch.manual_seed(0)
                nets[name] = vary(ZOO[name](), K, seed=0)
        return nets[name]
    return get


def _reference(net, frame):
    """PyTorch's classes for a frame, written apart from the exporter's conventions."""
    x = torch.from_numpy(parity.normalise(frame, MEAN, STD))
    with torch.no_grad():
        y = net(x)
    y = y.logits if hasattr(y, "logits") else y
    y = torch.nn.functional.interpolate(y, size=frame.shape[:2], mode="bilinear",
                                        align_corners=False)
    return y[0].argmax(0).numpy()


@pytest.mark.parametrize("target", ZOO_TARGETS)
@pytest.mark.parametrize("size", SIZES, ids=["{}x{}".format(*s) for s in SIZES])
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_exports_with_parity(name, size, target, zoo, tmp_path, caplog):
    net = zoo(name)
    w, h = size
    out = tmp_path / "m.onnx"
    caplog.set_level(logging.INFO, logger="jetseg")
    res = exporter.export_onnx(net, str(out), K, width=w, height=h, target=target,
                               check_count=1, arch=name)
    row = res.row("onnx fp32")
    assert row.agreement >= 0.999
    assert row.max_err <= 1e-3 * max(1.0, row.max_ref)
    m = load(out)
    assert meta(m)["jetseg.target"] == target
    assert meta(m)["jetseg.exporter"] == "torchscript"
    ops = set(n.op_type for n in m.graph.node)
    if TARGETS[target].ops is not None:
        assert ops <= TARGETS[target].ops
    if "segformer" in name:
        assert ("LayerNormalization" in ops) == (target != "trt8.5")
        assert ("LayerNormalization -> ReduceMean/Sub/Pow" in caplog.text) == \
            (target == "trt8.5")
    if name == "hf-segformer":
        assert "scores from output['logits']" in caplog.text
        assert "logits at 1/4 of the input ({}x{} for {}x{})".format(w // 4, h // 4, w, h) \
            in caplog.text
    # the written file, through the runtime, on a frame of its own
    frame = frame_at(w, h, seed=7)
    got = Segmenter(str(out)).process(frame).classes
    want = _reference(net, frame)
    assert len(np.unique(want)) >= 2          # a map worth comparing, not one class
    assert (got == want).mean() >= 0.999


def test_pan_at_a_size_it_cannot_take_names_the_size_it_can(zoo):
    """PAN's feature pyramid attention needs 128 pixels each way (issue 15's report)."""
    from jetseg.errors import JetsegError
    from jetseg_export import conventions
    net = _smp("PAN", "resnet18", decoder_channels=32)().eval()
    with pytest.raises(JetsegError) as e:
        conventions.logits_module(net, 128, 96, K)
    assert "the net cannot take 128x96" in str(e.value)
    assert "the nearest size it takes is 128x128, the smallest 128x128" in str(e.value)
    assert e.value.fix == "use --input-size 128x128"
