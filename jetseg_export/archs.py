"""The networks ``jetseg export --arch`` knows, and loading checkpoints into them.

Where torchvision defines a net, its definition is used as it is, so a torchvision
checkpoint's ``state_dict`` loads unchanged (and an ImageNet backbone file from torchvision
can seed training). The rest are written here with torchvision-style parameter names:

    fcn-alexnet          convolutionalised AlexNet (DIGITS / jetson-inference tutorial):
                         torchvision AlexNet ``features`` (conv1 padded by 100, Caffe's ceil
                         pooling), fc6/fc7 as 6x6 / 1x1 convolutions, 1x1 score layer, learned
                         x32 transposed convolution, crop at offset 18
    fcn8s-vgg16          FCN-8s (Long et al.): torchvision VGG16 ``features``, fc6/fc7 as 7x7 /
                         1x1 convolutions, skips from pool3, pool4 and conv7, transposed
                         convolutions x2, x2, x8, Caffe's crop offsets 5, 9, 31
    fcn-resnet18         torchvision FCN with a ResNet-18 backbone at stride 32 (BasicBlocks
                         take no dilation), FCNHead(512): the layout of jetson-inference's
                         FCN-ResNet18 models (dusty-nv/pytorch-segmentation)
    unet                 U-Net (Ronneberger et al.) in the layout of milesial/Pytorch-UNet
                         (``inc``, ``down1..4``, ``up1..4``, ``outc``; transposed-convolution
                         up-sampling), so that repository's checkpoints load
    fast-scnn            Fast-SCNN (Poudel et al. 2019), made for real time and for training
                         from scratch: a stride-8 learning-to-downsample branch, a stride-32
                         MobileNetV2-style global branch with pyramid pooling (bins 1, 2, 3,
                         6), fused at stride 8; 1.1 M parameters

Every builder takes ``num_classes`` and builds random weights: nothing is downloaded.
"""
import importlib
import inspect
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

from jetseg.errors import JetsegError, log


# ---- torchvision nets ------------------------------------------------------------------
def _tv(name):
    def build(num_classes, aux_loss=False):
        from torchvision.models import segmentation
        fn = getattr(segmentation, name)
        kw = dict(weights=None, weights_backbone=None, num_classes=num_classes)
        if "aux_loss" in inspect.signature(fn).parameters:
            kw["aux_loss"] = aux_loss
        return fn(**kw)
    build.__name__ = name
    build.aux = name != "lraspp_mobilenet_v3_large"
    return build


def fcn_resnet18(num_classes, aux_loss=False):
    from torchvision.models import resnet18
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.fcn import FCN, FCNHead
    layers = {"layer4": "out"}
    if aux_loss:
        layers["layer3"] = "aux"
    backbone = IntermediateLayerGetter(resnet18(weights=None), return_layers=layers)
    aux = FCNHead(256, num_classes) if aux_loss else None
    return FCN(backbone, FCNHead(512, num_classes), aux)


fcn_resnet18.aux = True


# ---- FCN-AlexNet and FCN-8s ------------------------------------------------------------
def _crop(x, offset, like):
    h, w = like.shape[2], like.shape[3]
    if x.shape[2] < offset + h or x.shape[3] < offset + w:
        raise ValueError("feature map {} too small to crop {}x{} at {}".format(
            tuple(x.shape), w, h, offset))
    return x[:, :, offset:offset + h, offset:offset + w]


def _caffe_pooling(features, first_pad):
    """torchvision ``features`` with Caffe FCN's conv1 padding and ceil-mode pooling."""
    features[0].padding = (first_pad, first_pad)
    for m in features:
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
    return features


def _alexnet_features():
    """torchvision's ``alexnet().features`` (same layers and names), without building the
    classifier's 58M parameters only to drop them."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2))


class FCNAlexNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = _caffe_pooling(_alexnet_features(), 100)
        self.fc6 = nn.Conv2d(256, 4096, 6)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(0.5)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, 63, stride=32, bias=False)

    def forward(self, x):
        h = self.features(x)
        h = self.drop(F.relu(self.fc6(h), inplace=True))
        h = self.drop(F.relu(self.fc7(h), inplace=True))
        h = self.upscore(self.score_fr(h))
        return _crop(h, 18, x)


class FCN8sVGG16(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        from torchvision.models import vgg
        self.features = _caffe_pooling(vgg.make_layers(vgg.cfgs["D"]), 100)
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d(0.5)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2,
                                                bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        # torchvision's vgg16.features: pool3 ends at index 16, pool4 at 23, pool5 at 30
        self._taps = (16, 23)

    def forward(self, x):
        h = x
        taps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._taps:
                taps.append(h)
        pool3, pool4 = taps
        h = self.drop(F.relu(self.fc6(h), inplace=True))
        h = self.drop(F.relu(self.fc7(h), inplace=True))
        up2 = self.upscore2(self.score_fr(h))
        h = up2 + _crop(self.score_pool4(pool4), 5, up2)
        up4 = self.upscore_pool4(h)
        h = up4 + _crop(self.score_pool3(pool3), 9, up4)
        return _crop(self.upscore8(h), 31, x)


# ---- U-Net (milesial/Pytorch-UNet layout) ----------------------------------------------
class DoubleConv(nn.Module):
    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy = x2.shape[2] - x1.shape[2]
        dx = x2.shape[3] - x1.shape[3]
        if dy or dx:
            x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, num_classes, n_channels=3, base=64):
        super().__init__()
        self.n_channels, self.n_classes, self.bilinear = n_channels, num_classes, False
        b = base
        self.inc = DoubleConv(n_channels, b)
        self.down1, self.down2 = Down(b, 2 * b), Down(2 * b, 4 * b)
        self.down3, self.down4 = Down(4 * b, 8 * b), Down(8 * b, 16 * b)
        self.up1, self.up2 = Up(16 * b, 8 * b), Up(8 * b, 4 * b)
        self.up3, self.up4 = Up(4 * b, 2 * b), Up(2 * b, b)
        self.outc = OutConv(b, num_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# ---- Fast-SCNN ----------------------------------------------------------------------------
def _cbr(cin, cout, k=1, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + [nn.ReLU(inplace=True)] if relu else layers))


def _dsconv(cin, cout, stride=1):
    """Depthwise-separable convolution: 3x3 depthwise, 1x1 pointwise, each BN + ReLU."""
    return nn.Sequential(_cbr(cin, cin, 3, stride, groups=cin), _cbr(cin, cout))


class _Bottleneck(nn.Module):
    """MobileNetV2's inverted residual (expansion ``t``), residual when shapes allow."""

    def __init__(self, cin, cout, stride, t=6):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.block = nn.Sequential(_cbr(cin, cin * t), _cbr(cin * t, cin * t, 3, stride,
                                                            groups=cin * t),
                                   _cbr(cin * t, cout, relu=False))

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class _PyramidPooling(nn.Module):
    def __init__(self, cin, cout, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(_cbr(cin, cin // 4) for _ in bins)
        self.out = _cbr(cin * 2, cout)

    def forward(self, x):
        size = x.shape[2:]
        feats = [x] + [F.interpolate(stage(F.adaptive_avg_pool2d(x, b)), size=size,
                                     mode="bilinear", align_corners=False)
                       for b, stage in zip(self.bins, self.stages)]
        return self.out(torch.cat(feats, 1))


class FastSCNN(nn.Module):
    """Fast-SCNN (Poudel, Liwicki, Cipolla 2019, arXiv:1902.04502), the paper's Table 1
    layout; plain convolutions, BN, ReLU, adaptive average pooling and bilinear resizes, so
    it exports to every TensorRT target (the exporter lowers pyramid pooling for the fixed
    input size)."""

    def __init__(self, num_classes):
        super().__init__()
        self.downsample = nn.Sequential(_cbr(3, 32, 3, 2), _dsconv(32, 48, 2),
                                        _dsconv(48, 64, 2))
        blocks, cin = [], 64
        for cout, stride in ((64, 2), (96, 2), (128, 1)):
            for i in range(3):
                blocks.append(_Bottleneck(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.global_features = nn.Sequential(*blocks, _PyramidPooling(128, 128))
        self.fuse_low = nn.Sequential(_cbr(128, 128, 3, groups=128),
                                      _cbr(128, 128, relu=False))
        self.fuse_high = _cbr(64, 128, relu=False)
        self.classifier = nn.Sequential(_dsconv(128, 128), _dsconv(128, 128), nn.Dropout(0.1),
                                        nn.Conv2d(128, num_classes, 1))

    def forward(self, x):
        high = self.downsample(x)
        low = F.interpolate(self.global_features(high), size=high.shape[2:], mode="bilinear",
                            align_corners=False)
        h = F.relu(self.fuse_low(low) + self.fuse_high(high))
        return F.interpolate(self.classifier(h), size=x.shape[2:], mode="bilinear",
                             align_corners=False)


ARCHS = {
    "fcn-alexnet": FCNAlexNet,
    "fcn8s-vgg16": FCN8sVGG16,
    "fcn-resnet18": fcn_resnet18,
    "fcn-resnet50": _tv("fcn_resnet50"),
    "deeplabv3-mobilenet": _tv("deeplabv3_mobilenet_v3_large"),
    "deeplabv3-resnet50": _tv("deeplabv3_resnet50"),
    "deeplabv3-resnet101": _tv("deeplabv3_resnet101"),
    "lraspp-mobilenet": _tv("lraspp_mobilenet_v3_large"),
    "unet": UNet,
    "fast-scnn": FastSCNN,
}


def build_arch(name, num_classes, aux_loss=False):
    """A fresh (random-weight) ``--arch`` network for ``num_classes`` classes."""
    if name not in ARCHS:
        import difflib
        close = difflib.get_close_matches(name, ARCHS, n=1)
        raise JetsegError("unknown --arch {!r}{}".format(
            name, " (did you mean {}?)".format(close[0]) if close else ""),
            fix="use one of: " + ", ".join(ARCHS) + ", or --module pkg.mod:build for your own")
    builder = ARCHS[name]
    if aux_loss and getattr(builder, "aux", False):
        return builder(num_classes, aux_loss=True)
    return builder(num_classes)


def build_module(spec, num_classes):
    """``pkg.mod:build`` or ``path/to/file.py:build`` -> nn.Module (build gets num_classes)."""
    if ":" not in spec.replace(":\\", "").replace(":/", "/") or spec.endswith(":"):
        raise JetsegError("--module {!r} is not MODULE:CALLABLE".format(spec),
                          fix="write e.g. --module mypkg.models:build (or file.py:build)")
    mod_name, attr = spec.rsplit(":", 1)
    obj = _import_attr(spec, mod_name, attr)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise JetsegError("--module {!r} is not callable".format(spec),
                          fix="name a function or class that returns an nn.Module")
    args, kwargs = _factory_call(spec, obj, num_classes)
    try:
        net = obj(*args, **kwargs)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        call = "{}({})".format(attr, "num_classes={}".format(num_classes) if kwargs else
                               num_classes if args else "")
        raise JetsegError("--module {!r}: {} raised {}: {}".format(spec, call, type(e).__name__,
                                                                 first),
                          fix="make {} build the net in plain Python first, or wrap it: def "
                              "build(num_classes): return ...".format(call))
    if not isinstance(net, nn.Module):
        raise JetsegError("--module {!r} returned a {}, not a torch.nn.Module".format(
            spec, type(net).__name__), fix="return the network (an nn.Module) from it")
    return net


def _import_attr(spec, mod_name, attr):
    """The object ``attr`` (dotted) of the module or .py file ``mod_name``."""
    try:
        if mod_name.endswith(".py"):
            if not os.path.isfile(mod_name):
                raise JetsegError("no such file", path=mod_name, fix="check the --module path")
            spec_ = importlib.util.spec_from_file_location(
                "jetseg_user_" + os.path.basename(mod_name)[:-3], mod_name)
            module = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
    except JetsegError:
        raise
    except ImportError as e:
        raise JetsegError("--module {!r}: cannot import {!r} ({})".format(spec, mod_name, e),
                          fix="run from the folder holding the package, or pip install what "
                              "it names")
    except Exception as e:              # the user's file itself fails (syntax, names ...)
        where = getattr(e, "lineno", None)
        raise JetsegError("--module {!r}: importing {!r} raised {}{}: {}".format(
            spec, mod_name, type(e).__name__, " (line {})".format(where) if where else "",
            (str(e).strip().splitlines() or [""])[0][:200]),
            fix="fix that error; python -c 'import {}' shows it in full".format(
                mod_name[:-3].replace("/", ".") if mod_name.endswith(".py") else mod_name))
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JetsegError("--module {!r}: {!r} has no attribute {!r}".format(
                spec, mod_name, part), fix="name a function or nn.Module class in it")
        obj = getattr(obj, part)
    return obj


def _factory_call(spec, obj, num_classes):
    """(args, kwargs) to call the factory ``obj`` with; refuses one that needs more."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}
    required = [p for p in params.values() if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if "num_classes" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        call = ((), {"num_classes": num_classes})
        rest = [p.name for p in required if p.name != "num_classes"]
    elif required and required[0].kind != required[0].KEYWORD_ONLY:
        call = ((num_classes,), {})
        rest = [p.name for p in required[1:]]
    else:
        call = ((), {})
        rest = [p.name for p in required]
    if rest:
        raise JetsegError("--module {!r} needs argument(s) {} that jetseg cannot give (it "
                          "passes num_classes only)".format(spec, ", ".join(rest)),
                          fix="wrap it in a function of num_classes, e.g. def build("
                              "num_classes): return {}(num_classes, {}=...)".format(
                                  spec.rsplit(":", 1)[1], rest[0]))
    return call


# ---- checkpoints -----------------------------------------------------------------------
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
_PREFIXES = ("module.", "_orig_mod.", "model.")


def read_state_dict(path):
    """A checkpoint file -> {name: tensor}, loaded with ``weights_only=True``."""
    if not os.path.isfile(str(path)):
        raise JetsegError("checkpoint not found", path=path, fix="check the --checkpoint path")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise JetsegError("cannot load the checkpoint with weights_only=True ({})".format(
            first[:200]), path=path,
            fix="save the weights only: torch.save(model.state_dict(), path)")
    sd = obj
    for _ in range(2):
        if isinstance(sd, dict) and not _all_tensors(sd):
            inner = [sd[k] for k in _WRAPPERS if isinstance(sd.get(k), dict)]
            if inner:
                sd = inner[0]
    if not isinstance(sd, dict) or not sd or not _all_tensors(sd):
        raise JetsegError("checkpoint holds no state_dict (a dict of tensors, or one under "
                          "'state_dict' / 'model')", path=path,
                          fix="save it with torch.save(model.state_dict(), path)")
    return sd


def _all_tensors(d):
    return all(isinstance(v, torch.Tensor) for v in d.values())


def _class_count_from_mismatch(mismatched, num_classes):
    """If every mismatched tensor differs only where ``num_classes`` sits, the other count."""
    found = set()
    for _, ck, own in mismatched:
        if len(ck) != len(own):
            return None
        other = set(c for c, o in zip(ck, own) if c != o)
        if any(o != num_classes for c, o in zip(ck, own) if c != o) or len(other) != 1:
            return None
        found |= other
    return found.pop() if len(found) == 1 else None


def checkpoint_facts(path):
    """The model facts ``jetseg train`` stores beside the weights ({} for other files)."""
    if not path or not os.path.isfile(str(path)):
        return {}
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        return {}
    if not isinstance(obj, dict) or "arch" not in obj or "classes" not in obj:
        return {}
    keys = ("arch", "num_classes", "classes", "colors", "input_size", "mean", "std",
            "channel_order", "ignore_index", "dataset", "epoch", "miou")
    return dict((k, obj[k]) for k in keys if k in obj)


def load_checkpoint(net, path, num_classes, arch=None):
    """Load ``path`` into ``net`` strictly; errors list missing / unexpected keys."""
    sd = read_state_dict(path)
    own = net.state_dict()
    for prefix in _PREFIXES:      # DataParallel, torch.compile, Lightning-style wrappers
        if all(k.startswith(prefix) for k in sd) and not all(k.startswith(prefix) for k in own):
            sd = dict((k[len(prefix):], v) for k, v in sd.items())
    if arch and any(k.startswith("aux_classifier.") for k in sd) and \
            not any(k.startswith("aux_classifier.") for k in own):
        if getattr(ARCHS.get(arch), "aux", False):
            net = build_arch(arch, num_classes, aux_loss=True)      # load it, then drop it
            own = net.state_dict()
        else:
            sd = dict((k, v) for k, v in sd.items() if not k.startswith("aux_classifier."))
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own
                  if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if mismatched:
        other = _class_count_from_mismatch(mismatched, num_classes)
        if other is not None:
            raise JetsegError("checkpoint is for {} classes but --num-classes is {} ({} has "
                              "shape {}, the net wants {})".format(
                                  other, num_classes, mismatched[0][0], mismatched[0][1],
                                  mismatched[0][2]), path=path,
                              fix="pass --num-classes {} (and a classes.txt with {} names)"
                              .format(other, other))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append("{} missing key(s): {}".format(len(missing), _head(missing)))
        if unexpected:
            parts.append("{} unexpected key(s): {}".format(len(unexpected), _head(unexpected)))
        if mismatched:
            parts.append("{} shape mismatch(es): {}".format(len(mismatched), _head(
                ["{} {} vs {}".format(k, list(a), list(b)) for k, a, b in mismatched])))
        raise JetsegError("checkpoint does not fit {}: {}".format(
            arch or type(net).__name__, "; ".join(parts)), path=path,
            fix="give the --arch (or --module) and --num-classes it was trained with")
    net.load_state_dict(sd, strict=True)
    if getattr(net, "aux_classifier", None) is not None:
        net.aux_classifier = None
    log.info("loaded %d tensors from %s", len(sd), path)
    return net


def _head(items, n=6):
    items = list(items)
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


class LogitsOnly(nn.Module):
    """Any segmentation net -> a plain ``[N, C, H, W]`` logits tensor (dict / tuple outputs)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        if isinstance(out, dict):
            out = out["out"] if "out" in out else next(iter(out.values()))
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out
