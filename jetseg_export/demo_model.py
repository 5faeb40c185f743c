"""Build the bundled placeholder model ``engines/camvid-demo.onnx`` without torch.

    python -m jetseg_export.demo_model --dataset ../shared/datasets/camvid -o engines/camvid-demo.onnx

A tiny per-pixel classifier for CamVid's 11 classes, trained with plain numpy, so that a
fresh clone has a working default model before the real (torch-trained) one exists. It is
honest about what it is: it sees colour, local texture, blurred context and position, no
shapes, and scores well below a real segmentation net.

The core graph (opset 17, input ``[1,3,360,480]`` float normalised as compose's defaults:
RGB, ImageNet mean/std) is::

    x -> AveragePool 4x4/4                       p     [1,3,90,120]   colour
    x*x -> AveragePool 4x4/4, minus p*p          v     [1,3,90,120]   texture (variance)
    p -> 7x7, 25x25, 61x61 box averages (stride 1, same size; each as separable
         AveragePools k x 1 and 1 x k, count_include_pad=0)          context
    v -> 7x7 box average                                              texture context
    y, x coordinates (0..1) as constants                              position
    Concat (20 channels) -> 1x1 Conv 64 -> Relu -> 1x1 Conv 64 -> Relu -> 1x1 Conv 11
                                                 logits [1,11,90,120]

``features`` computes the same 20 channels in numpy for training; ``check_core`` runs the
ONNX graph with ONNX Runtime and compares logits (the same check is in the tests). The core
is wrapped with ``jetseg_export.compose`` (uint8 BGR in; class map, overlay, confidence and
scores out; CamVid names and colours; val mIoU in the metadata).
"""
import argparse
import os
import sys
import time

import numpy as np

from jetseg.eval import metrics
from jetseg.eval.datasets.camvid import COLORS, VOID
from jetseg.eval.datasets.camvid import NAMES as CLASSES

WIDTH, HEIGHT, DOWN = 480, 360, 4
GW, GH = WIDTH // DOWN, HEIGHT // DOWN          # 120 x 90 logits grid
BOXES = (7, 25, 61)                               # context box sizes on the 90x120 grid
TBOX = 7                                        # texture context box
NUM_FEATURES = 3 + 3 + 3 * len(BOXES) + 3 + 2
OPSET = 17
ARCH = "camvid-demo (numpy MLP on colour+position, placeholder)"


# ---- features (numpy) ----------------------------------------------------------------
def normalise(frame_bgr):
    """HxWx3 uint8 BGR -> [3,H,W] float32, exactly as compose's graph does it."""
    from jetseg.core.modelinfo import ModelInfo
    from jetseg.core.processing import normalize_coeffs
    scale, bias = normalize_coeffs(ModelInfo())
    x = frame_bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    return x * scale[:, None, None] + bias[:, None, None]


def _pool(x, k):
    c, h, w = x.shape
    return x.reshape(c, h // k, k, w // k, k).mean(axis=(2, 4), dtype=np.float32)


def _box(x, k):
    """Stride-1 k x k average, zero padding not counted (AveragePool count_include_pad=0)."""
    import cv2
    ones = cv2.boxFilter(np.ones(x.shape[1:], np.float32), -1, (k, k), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)
    return np.stack([cv2.boxFilter(ch, -1, (k, k), normalize=False,
                                   borderType=cv2.BORDER_CONSTANT) / ones for ch in x])


def coords():
    """[2,90,120]: y and x of each cell centre, 0..1."""
    y = (np.arange(GH, dtype=np.float32) + 0.5) / GH
    x = (np.arange(GW, dtype=np.float32) + 0.5) / GW
    return np.stack([np.repeat(y[:, None], GW, 1), np.repeat(x[None, :], GH, 0)])


def features(x):
    """[3,360,480] normalised -> [NUM_FEATURES,90,120] float32 (the core graph's Concat)."""
    p = _pool(x, DOWN)
    v = _pool(x * x, DOWN) - p * p
    parts = [p, v] + [_box(p, k) for k in BOXES] + [_box(v, TBOX), coords()]
    return np.concatenate(parts).astype(np.float32)


def mlp(f, weights):
    """[F,h,w] features -> [C,h,w] logits with ``weights`` = [(W [out,in], b [out]), ...]."""
    F, h, w = f.shape
    a = f.reshape(F, -1)
    for i, (W, b) in enumerate(weights):
        a = W @ a + b[:, None]
        if i < len(weights) - 1:
            a = np.maximum(a, 0)
    return a.reshape(-1, h, w)


# ---- the ONNX core graph ---------------------------------------------------------------
def core_graph(weights, input_name="input", output_name="logits"):
    """The core ONNX model (float NCHW in, logits out) for MLP ``weights``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def pool(src, dst, k, stride, pad=0):
        return helper.make_node("AveragePool", [src], [dst], kernel_shape=[k, k],
                                strides=[stride, stride], pads=[pad] * 4, count_include_pad=0)

    nodes = [pool(input_name, "p", DOWN, DOWN),
             helper.make_node("Mul", [input_name, input_name], ["xx"]),
             pool("xx", "pxx", DOWN, DOWN),
             helper.make_node("Mul", ["p", "p"], ["pp"]),
             helper.make_node("Sub", ["pxx", "pp"], ["v"])]
    def box(src, dst, k):
        # separable k x 1 then 1 x k averages: with count_include_pad=0 this equals the
        # k x k average exactly (the valid count factorises), at 2k instead of k*k per pixel
        r = k // 2
        return [helper.make_node("AveragePool", [src], [dst + "_v"], kernel_shape=[k, 1],
                                 strides=[1, 1], pads=[r, 0, r, 0], count_include_pad=0),
                helper.make_node("AveragePool", [dst + "_v"], [dst], kernel_shape=[1, k],
                                 strides=[1, 1], pads=[0, r, 0, r], count_include_pad=0)]

    parts = ["p", "v"]
    for k in BOXES:
        nodes += box("p", "box%d" % k, k)
        parts.append("box%d" % k)
    nodes += box("v", "vbox%d" % TBOX, TBOX)
    parts += ["vbox%d" % TBOX, "coords"]
    inits = [numpy_helper.from_array(coords()[None], "coords")]
    nodes.append(helper.make_node("Concat", parts, ["feat"], axis=1))
    a = "feat"
    for i, (W, b) in enumerate(weights):
        last = i == len(weights) - 1
        inits.append(numpy_helper.from_array(W[:, :, None, None].astype(np.float32), "w%d" % i))
        inits.append(numpy_helper.from_array(b.astype(np.float32), "b%d" % i))
        out = output_name if last else "fc%d" % i
        nodes.append(helper.make_node("Conv", [a, "w%d" % i, "b%d" % i], [out]))
        if not last:
            nodes.append(helper.make_node("Relu", [out], ["h%d" % i]))
            a = "h%d" % i
    num = weights[-1][0].shape[0]
    g = helper.make_graph(
        nodes, "camvid_demo",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, HEIGHT, WIDTH])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, num, GH, GW])],
        inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="jetseg_export.demo_model")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def weights_from_model(model):
    """The MLP weights back out of a core or composed model (initializers w0, b0, ...)."""
    from onnx import numpy_helper
    init = dict((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    out, i = [], 0
    while "w%d" % i in init:
        out.append((init["w%d" % i][:, :, 0, 0], init["b%d" % i]))
        i += 1
    return out


def check_core(core, weights, frame_bgr, tol=1e-3):
    """Max |numpy logits - ONNX Runtime logits| on one frame; raises if above ``tol``."""
    import onnxruntime as ort
    x = normalise(frame_bgr)
    sess = ort.InferenceSession(core.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x[None]})[0][0]
    want = mlp(features(x), weights)
    err = float(np.abs(got - want).max())
    if not err < tol:
        raise AssertionError("numpy and ONNX logits differ by {:.2e} (> {})".format(err, tol))
    return err


# ---- data ------------------------------------------------------------------------------
def list_split(dataset, split):
    d = os.path.join(dataset, split)
    names = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
    return [(os.path.join(d, n), os.path.join(dataset, split + "annot", n[:-4] + ".png"))
            for n in names]


def load_split(dataset, split):
    """(features [N,F] float32, labels [N] uint8) on the 90x120 grid, void included."""
    import cv2
    fs, ls = [], []
    for img, ann in list_split(dataset, split):
        frame = cv2.imread(img)
        lab = cv2.imread(ann, cv2.IMREAD_GRAYSCALE)
        if frame is None or lab is None or frame.shape[:2] != (HEIGHT, WIDTH):
            raise SystemExit("cannot read {} / {} as a 480x360 frame and label".format(img, ann))
        f = features(normalise(frame))
        fs.append(f.reshape(f.shape[0], -1).T)
        ls.append(lab[DOWN // 2::DOWN, DOWN // 2::DOWN].reshape(-1))   # label at cell centre
    return np.concatenate(fs), np.concatenate(ls)


# ---- training --------------------------------------------------------------------------
def predict(X, weights, batch=262144):
    out = []
    for i in range(0, len(X), batch):
        a = X[i:i + batch].T
        out.append(mlp(a[:, :, None], weights)[:, :, 0].argmax(0))
    return np.concatenate(out)


def train(X, y, Xv, yv, hidden=(64, 64), epochs=6, batch=4096, lr=3e-3, balance=0.5,
          seed=0, log=print):
    """Adam on weighted cross-entropy; returns (weights, grid val mIoU) of the best epoch.

    ``balance``: class weights (median frequency / frequency) ** balance (0 = none,
    1 = SegNet's median frequency balancing). Features are standardised with the training
    mean/std, folded into the first layer's weights at the end.
    """
    rng = np.random.RandomState(seed)
    num = len(CLASSES)
    keep = y < num
    X, y = X[keep], y[keep].astype(np.int64)
    mu = X.mean(0)
    sd = X.std(0) + 1e-6
    Xs = ((X - mu) / sd).astype(np.float32)
    freq = np.bincount(y, minlength=num).astype(np.float64)
    freq /= freq.sum()
    cw = (np.median(freq) / np.maximum(freq, 1e-9)) ** balance
    cw = (cw / (cw * freq).sum()).astype(np.float32)          # mean weight 1 over pixels
    sizes = [X.shape[1]] + list(hidden) + [num]
    Ws = [(rng.randn(o, i) * np.sqrt(2.0 / i)).astype(np.float32)
          for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, np.float32) for o in sizes[1:]]
    params = Ws + bs
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps, t = 0.9, 0.999, 1e-8, 0
    steps = epochs * (len(Xs) // batch)
    best = (-1.0, None, -1)

    def folded():
        W0 = Ws[0] / sd[None, :]
        b0 = bs[0] - W0 @ mu
        return [(W0.astype(np.float32), b0.astype(np.float32))] + \
            [(W.copy(), b.copy()) for W, b in zip(Ws[1:], bs[1:])]

    for ep in range(epochs):
        order = rng.permutation(len(Xs))
        tot, n = 0.0, 0
        for s in range(len(Xs) // batch):
            idx = order[s * batch:(s + 1) * batch]
            xb, yb = Xs[idx], y[idx]
            # forward
            acts = [xb]
            a = xb
            for li, (W, b) in enumerate(zip(Ws, bs)):
                a = a @ W.T + b
                if li < len(Ws) - 1:
                    a = np.maximum(a, 0)
                acts.append(a)
            z = a - a.max(1, keepdims=True)
            e = np.exp(z)
            prob = e / e.sum(1, keepdims=True)
            wb = cw[yb]
            loss = -(wb * np.log(prob[np.arange(len(yb)), yb] + 1e-12)).sum() / wb.sum()
            tot += float(loss)
            n += 1
            # backward
            g = prob
            g[np.arange(len(yb)), yb] -= 1
            g *= (wb / wb.sum())[:, None]
            gW, gb = [None] * len(Ws), [None] * len(Ws)
            for li in range(len(Ws) - 1, -1, -1):
                gW[li] = g.T @ acts[li]
                gb[li] = g.sum(0)
                if li > 0:
                    g = (g @ Ws[li]) * (acts[li] > 0)
            # Adam with cosine decay
            t += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * min(t, steps) / steps))
            for p, gp, mp, vp in zip(params, gW + gb, m, v):
                mp *= b1
                mp += (1 - b1) * gp
                vp *= b2
                vp += (1 - b2) * gp * gp
                p -= (rate * (mp / (1 - b1 ** t)) / (np.sqrt(vp / (1 - b2 ** t)) + eps)
                      ).astype(np.float32)
        wts = folded()
        miou = metrics.miou(metrics.confusion_matrix(yv, predict(Xv, wts), num,
                                                     ignore_index=VOID))
        log("  epoch {}/{}  loss {:.4f}  val mIoU (90x120 grid) {:.2f}%".format(
            ep + 1, epochs, tot / max(n, 1), 100 * miou))
        if miou > best[0]:
            best = (miou, wts, ep + 1)
    return best[1], best[0]


# ---- full-resolution evaluation through jetseg -------------------------------------------
def evaluate(model_path, dataset, split="val", limit=None):
    """``jetseg eval``'s runner at full 360x480 over ``split`` (void pixels ignored):
    the EvalResult, whose ``miou`` is the figure recorded in the model."""
    from jetseg import Segmenter
    from jetseg.eval.datasets import open_dataset
    from jetseg.eval.evaluate import evaluate as run_eval
    seg = Segmenter(model_path)
    try:
        return run_eval(seg, open_dataset(dataset, "camvid", split), limit=limit)
    finally:
        seg.close()


def iou_table(ious, miou):
    rows = ["| class | IoU |", "|---|---|"]
    rows += ["| {} | {:.1f}% |".format(c, 100 * v) for c, v in zip(CLASSES, ious)]
    rows.append("| **mIoU** | **{:.2f}%** |".format(100 * miou))
    return "\n".join(rows)


# ---- command line ----------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m jetseg_export.demo_model",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="CamVid folder (train/, val/, *annot/)")
    ap.add_argument("-o", "--output", default="engines/camvid-demo.onnx")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", default="64,64", help="hidden layer widths, e.g. 64,64")
    ap.add_argument("--balance", default="0.5",
                    help="class-weight exponent(s) to try, comma separated; the best on val "
                         "is kept (0 = unweighted, 1 = median frequency balancing)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import cv2
    import onnx
    from jetseg_export.compose import compose

    t0 = time.time()
    np.random.seed(args.seed)
    print("features: train ...", flush=True)
    X, y = load_split(args.dataset, "train")
    Xv, yv = load_split(args.dataset, "val")
    print("  {} train / {} val cells, {} features ({:.0f} s)".format(
        len(X), len(Xv), X.shape[1], time.time() - t0), flush=True)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    best = (-1.0, None, None)
    for bal in [float(b) for b in args.balance.split(",")]:
        print("training: hidden {}, class-weight exponent {}, {} epochs".format(
            hidden, bal, args.epochs), flush=True)
        wts, miou = train(X, y, Xv, yv, hidden=hidden, epochs=args.epochs, balance=bal,
                          seed=args.seed, log=lambda s: print(s, flush=True))
        if miou > best[0]:
            best = (miou, wts, bal)
    _, weights, bal = best
    print("kept class-weight exponent {} ({:.0f} s so far)".format(bal, time.time() - t0))

    core = core_graph(weights)
    frame = cv2.imread(list_split(args.dataset, "val")[0][0])
    err = check_core(core, weights, frame)
    print("numpy vs ONNX Runtime logits on {}: max abs error {:.2e}".format(
        os.path.basename(list_split(args.dataset, "val")[0][0]), err))

    extra = {"arch": ARCH, "dataset": "CamVid train (367 frames)", "miou": None,
             "producer": "jetseg_export.demo_model (numpy, seed {}, hidden {}, class-weight "
                         "exponent {})".format(args.seed, ",".join(map(str, hidden)), bal)}

    def build(miou, frames=None):
        if miou is not None:
            extra.update(metrics.miou_facts(miou, split="CamVid val ({} frames, 480x360, "
                                            "void ignored)".format(frames)))
        return compose(core, CLASSES, COLORS, scores=True, confidence=True, overlay=True,
                       upsample=True, ignore_class=None, alpha=150, extra=extra)

    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.output + ".part.onnx"
    onnx.save(build(None), tmp)
    print("evaluating on val at 480x360 with jetseg.Segmenter ...", flush=True)
    res = evaluate(tmp, args.dataset, "val")
    os.remove(tmp)
    miou = res.miou
    onnx.save(build(miou, res.images), args.output)
    print("per-class IoU on CamVid val ({} frames, 480x360, void ignored):".format(res.images))
    print(iou_table(res.per_class_iou(), miou))
    print("wrote {} ({:.1f} kB), val mIoU {:.2f}%, {:.0f} s in all".format(
        args.output, os.path.getsize(args.output) / 1024.0, 100 * miou, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
