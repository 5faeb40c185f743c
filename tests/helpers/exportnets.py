"""Nets and checks the export tests share (torch and onnx: import only from export tests)."""
import json
import os
import sys

import numpy as np
import onnx
import pytest
import torch

from jetseg_export import archs, parity


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMVID = os.path.join(ROOT, "..", "shared", "datasets", "camvid")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vary(net, num_classes, seed=0):
    """Random BatchNorm statistics and no classifier bias: outputs that vary over the frame."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = 1 + 0.3 * torch.randn(n, generator=g)
            m.bias.data = 0.3 * torch.randn(n, generator=g)
            m.running_mean = 0.2 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)
        if isinstance(m, torch.nn.Conv2d) and m.out_channels == num_classes and \
                m.bias is not None:
            m.bias.data.zero_()
    return net.eval()


def make_net(arch, num_classes=5, seed=0):
    torch.manual_seed(seed)
    return vary(archs.build_arch(arch, num_classes), num_classes, seed)


def torch_classes(net, frame, ignore_class=None):
    """The reference, written apart from the exporter: normalise, run, upsample, argmax."""
    x = frame[:, :, ::-1].astype(np.float64) / 255.0
    x = ((x - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)[None].astype(np.float32)
    with torch.no_grad():
        y = archs.LogitsOnly(net)(torch.from_numpy(x))
        y = torch.nn.functional.interpolate(y, size=frame.shape[:2], mode="bilinear",
                                            align_corners=False)[0]
    if ignore_class is not None:
        y[ignore_class] = -float("inf")
    return y.argmax(0).numpy()


def camvid_or_skip():
    if not os.path.isdir(os.path.join(CAMVID, "val")):
        pytest.skip("CamVid frames not found at {} (see its README)".format(CAMVID))
    return CAMVID


def frame_at(w, h, seed=1):
    return parity.random_frames(1, w, h, seed=seed)[0]


def load(path):
    return onnx.load(str(path))


def meta(model):
    return dict((p.key, json.loads(p.value)) for p in model.metadata_props)


USER_MODULE = '''
import torch

class Net(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, num_classes, 1))

    def forward(self, x):
        return {"out": self.body(x)}

def build(num_classes):
    return Net(num_classes)

class Fmod(torch.nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return torch.fmod(self.conv(x), 0.5)
'''


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n == "mypkg" or n.startswith("mypkg.")]:
        del sys.modules[name]
