"""What a segmentation net returns, read once at the export size, turned into plain logits.

    logits_net, notes = logits_module(net, width, height, num_classes)

Nets come with the output conventions of their library; each is taken without user code and
said in the export log:
    tensor [1, C, h, w]                  as it is
    dict with "out" (torchvision)        that entry ("aux" and the rest dropped)
    dict / object with "logits"          that entry (Hugging Face ``...SegmenterOutput``)
    tuple / list (main + auxiliary heads) the first score map; the others named as dropped
    logits below the input resolution    upsampled bilinearly in the graph before the argmax
                                         (compose.py's Resize; SegFormer's are at 1/4)
Refused with one line naming the cause and the fix: an output that is not per-pixel class
scores (a classifier's [1, 1000], a class map already argmax-ed, a map whose shape does not
follow the input's, the wrong channel count), and an input size the net cannot take: then the
nearest size it does take and the smallest one are found by trying sizes (cheap forwards).
"""
import time

import torch
from torch import nn

from jetseg.errors import JetsegError, log

LOGIT_KEYS = ("out", "logits")


class Logits(nn.Module):
    """``net`` whose output is reduced to the tensor at ``path`` ([("key"|"index"|"attr", k)])."""

    def __init__(self, net, path):
        super().__init__()
        self.net = net
        self.path = list(path)

    def forward(self, x):
        out = self.net(x)
        for kind, k in self.path:
            out = getattr(out, k) if kind == "attr" else out[k]
        return out


def describe_path(path):
    if not path:
        return "the output tensor"
    parts = []
    for kind, k in path:
        parts.append(".{}".format(k) if kind == "attr" else "[{!r}]".format(k))
    return "output" + "".join(parts)


def _shape(t):
    return list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _score_like(t, num_classes):
    return isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point() and \
        t.shape[1] == num_classes


def find_logits(out, num_classes):
    """(path, tensor, notes) of the score map in a net's output ``out``."""
    if isinstance(out, torch.Tensor):
        return [], out, []
    if isinstance(out, dict):           # also Hugging Face ModelOutput (an OrderedDict)
        items = [(k, v) for k, v in out.items() if v is not None]
        for key in LOGIT_KEYS:
            if key in out and out[key] is not None:
                rest = [k for k, _ in items if k != key]
                return [("key", key)], out[key], (["dropped: {}".format(
                    ", ".join(repr(k) for k in rest))] if rest else [])
        maps = [(k, v) for k, v in items if _score_like(v, num_classes)]
        if len(maps) == 1:
            rest = [k for k, _ in items if k != maps[0][0]]
            return [("key", maps[0][0])], maps[0][1], (["dropped: {}".format(
                ", ".join(repr(k) for k in rest))] if rest else [])
        raise JetsegError("the net returns a dict with keys {} and none is 'out' or "
                          "'logits'".format([k for k, _ in items]),
                          fix="return the score map, or a dict with it under 'out'")
    if not isinstance(out, (tuple, list)) and isinstance(getattr(out, "logits", None),
                                                          torch.Tensor):
        return [("attr", "logits")], out.logits, []
    if isinstance(out, (tuple, list)) and out:
        for i, v in enumerate(out):
            if isinstance(v, torch.Tensor):
                rest = [_shape(o) for j, o in enumerate(out) if j != i]
                notes = ["took output [{}] of {} as the main head; dropped {} (auxiliary "
                         "heads?)".format(i, len(out), ", ".join(str(r) for r in rest))] \
                    if rest else []
                return [("index", i)], v, notes
            if isinstance(v, dict) or hasattr(v, "logits"):
                path, t, notes = find_logits(v, num_classes)
                return [("index", i)] + path, t, notes
    raise JetsegError("the net returns a {}, not a score map".format(type(out).__name__),
                      fix="return the [1, classes, H, W] score map from forward()")


def check_scores(t, width, height, num_classes, where="the net"):
    """Refuse what is not per-pixel class scores for an HxW input; return notes."""
    shape = _shape(t)
    if not isinstance(t, torch.Tensor):
        raise JetsegError("{} returns a {}, not a score map".format(where, shape),
                          fix="return the [1, classes, H, W] score map from forward()")
    if t.dim() == 3 and not t.is_floating_point():
        raise JetsegError("{} returns {} {}: a class map already argmax-ed, not class "
                          "scores".format(where, shape, str(t.dtype).replace("torch.", "")),
                          fix="return the scores before the argmax (jetseg adds it in the "
                              "graph)")
    if t.dim() == 2:
        raise JetsegError("{} returns {}: one score vector for the whole image (a "
                          "classifier), not per-pixel class scores".format(where, shape),
                          fix="export a segmentation net (output [1, classes, H, W])")
    if t.dim() != 4 or t.shape[0] != 1:
        raise JetsegError("{} returns {}, not [1, classes, H, W] class scores".format(
            where, shape), fix="return the score map [1, classes, H, W] from forward()")
    if not t.is_floating_point():
        raise JetsegError("{} returns {} of {}, not float class scores".format(
            where, shape, str(t.dtype).replace("torch.", "")),
            fix="return the float scores before any argmax")
    if t.shape[1] != num_classes:
        if t.shape[3] == num_classes and t.shape[1] == height:
            raise JetsegError("{} returns {}: channels last, not [1, classes, H, W]".format(
                where, shape), fix="permute its output to [1, classes, H, W] "
                                   "(out.permute(0, 3, 1, 2))")
        raise JetsegError("the net outputs {} channels but --num-classes is {}".format(
            t.shape[1], num_classes), fix="pass --num-classes {}".format(t.shape[1]))
    h, w = int(t.shape[2]), int(t.shape[3])
    expect_h = w * float(height) / width
    if (h == 1 and w == 1 and width * height > 1) or abs(h - expect_h) > 1 + 0.1 * expect_h:
        raise JetsegError("{} returns {} for a {}x{} input: not a per-pixel score map (its "
                          "shape does not follow the input's)".format(where, shape, width,
                                                                      height),
                          fix="return the score map [1, classes, H/s, W/s] from forward()")
    if (h, w) == (height, width):
        return []
    if h < height:
        return ["logits at 1/{:g} of the input ({}x{} for {}x{}): upsampled bilinearly in "
                "the graph before the argmax".format(round(float(height) / h, 2), w, h, width,
                                                     height)]
    return ["logits at {}x{}, above the {}x{} input: resized bilinearly in the graph before "
            "the argmax".format(w, h, width, height)]


def _runs(net, width, height):
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, height, width))
        return True
    except Exception:
        return False


def accepted_sizes(net, width, height, budget_s=20.0):
    """(nearest size >= WxH the net takes, smallest size it takes), each (w, h) or None."""
    t0 = time.perf_counter()

    def ok(w, h):
        return time.perf_counter() - t0 < budget_s and _runs(net, w, h)

    nearest, step, tried = None, None, set([(width, height)])
    for s in (8, 16, 32, 64, 128):
        w, h = -(-width // s) * s, -(-height // s) * s
        if (w, h) not in tried and ok(w, h):
            nearest, step = (w, h), s
            break
        tried.add((w, h))
    if nearest is None:
        for k in range(1, 5):           # maybe a minimum, not a multiple: grow
            w, h = -(-width // 32) * 32 + 32 * k, -(-height // 32) * 32 + 32 * k
            if ok(w, h):
                nearest, step = (w, h), 32
                break
    if nearest is None:
        return None, None
    min_h = next((h for h in range(step, nearest[1] + 1, step) if ok(nearest[0], h)),
                 nearest[1])
    min_w = next((w for w in range(step, nearest[0] + 1, step) if ok(w, min_h)), nearest[0])
    return nearest, (min_w, min_h)


def logits_module(net, width, height, num_classes):
    """``net`` -> (module returning plain [1, C, h, w] logits, notes for the log)."""
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, 3, height, width))
    except Exception as e:
        _refuse_size(net, width, height, e)
    path, t, notes = find_logits(out, num_classes)
    notes = notes + check_scores(t, width, height, num_classes, where="the net")
    if path:
        notes.insert(0, "scores from {}".format(describe_path(path)))
    for n in notes:
        log.info("net output: %s", n)
    return Logits(net, path).eval(), notes


def _refuse_size(net, width, height, e):
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    nearest, smallest = accepted_sizes(net, width, height)
    if nearest is None:
        raise JetsegError("the net fails on a 1x3x{}x{} input: {}".format(height, width, first),
                          fix="check that the net runs in PyTorch on a [1, 3, H, W] tensor")
    raise JetsegError("the net cannot take {}x{} ({}); the nearest size it takes is {}x{}, "
                      "the smallest {}x{}".format(width, height, first, nearest[0], nearest[1],
                                                  smallest[0], smallest[1]),
                      fix="use --input-size {}x{}".format(*nearest))


__all__ = ["logits_module", "find_logits", "check_scores", "accepted_sizes", "Logits"]
