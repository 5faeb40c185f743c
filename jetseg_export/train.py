"""``jetseg train``: labelled images -> a checkpoint that ``jetseg export`` turns into a model.

    jetseg train --arch lraspp-mobilenet --dataset ../shared/datasets/camvid --format camvid \\
        --input-size 480x360 --epochs 100 -o runs/camvid/
    torchrun --nproc_per_node 2 -m jetseg_export.train ...      # DistributedDataParallel

Augmentation (random scale, crop, horizontal flip, colour jitter) is done with numpy/OpenCV
in the data loader. The loss ignores the dataset's ignore index and can weight classes.
Every epoch: validation mIoU (jetseg.eval.metrics: the mean IoU over the classes present in
the split's ground truth; scores upsampled to the label's resolution before argmax, as the
exported graph does), ``last.pth`` and, when better, ``best.pth``, a line in
``log.csv`` and ``curves.png``. ``--resume`` continues from ``last.pth``. Checkpoints carry
the classes, colours, input size and normalisation, so they export without extra flags.

Which frames (``jetseg_export.folds``): ``--holdout SEQ`` validates on whole sequences left
out of training, ``--folds sequences`` holds out each in turn and reports the mean, and
``--train-split trainval --no-val`` trains the final model on everything for a fixed
number of epochs (``final.pth``).
"""
import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np

from jetseg.errors import JetsegError, log
from jetseg.core.modelinfo import IMAGENET_MEAN, IMAGENET_STD
from jetseg.core.processing import resize_nearest
from jetseg.eval import metrics

CKPT_VERSION = 1


# ---- data -------------------------------------------------------------------------------
def augment(image, label, size, rng, ignore_index, scale=(0.5, 2.0), jitter=0.3):
    """Random scale, crop (padded with ignore), horizontal flip and colour jitter."""
    import cv2
    w, h = size
    base = max(float(w) / image.shape[1], float(h) / image.shape[0])
    s = base * rng.uniform(*scale)
    nw, nh = max(1, int(round(image.shape[1] * s))), max(1, int(round(image.shape[0] * s)))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # half-pixel-centred nearest, like INTER_LINEAR's sampling (cv2's INTER_NEAREST is
    # shifted by up to a pixel against it, which misaligns labels and images)
    label = resize_nearest(label, nw, nh)
    ph, pw = max(0, h - nh), max(0, w - nw)
    if ph or pw:
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                   value=int(ignore_index))
    y = rng.randint(0, image.shape[0] - h + 1)
    x = rng.randint(0, image.shape[1] - w + 1)
    image, label = image[y:y + h, x:x + w], label[y:y + h, x:x + w]
    if rng.rand() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    if jitter:
        img = image.astype(np.float32)
        img = img * rng.uniform(1 - jitter, 1 + jitter)                       # brightness
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - jitter, 1 + jitter) + mean      # contrast
        grey = img.mean(axis=2, keepdims=True)
        img = (img - grey) * rng.uniform(1 - jitter, 1 + jitter) + grey      # saturation
        image = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def to_tensor(image_bgr, mean, std):
    """BGR uint8 -> normalised RGB float32 CHW (what jetseg's graph does in front of the net)."""
    x = image_bgr[:, :, ::-1].astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


class TrainSet(object):
    """A jetseg dataset as a torch Dataset (index -> (tensor, label)), augmented or not."""

    def __init__(self, dataset, size, train, seed, mean, std):
        self.ds, self.size, self.train, self.seed = dataset, size, train, seed
        self.mean, self.std = mean, std
        self.epoch = 0
        self.scale, self.jitter = (0.5, 2.0), 0.3

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        import cv2
        import torch
        image, label = self.ds[i]
        ignore = self.ds.ignore_index
        if self.train:
            rng = np.random.RandomState((self.seed * 1000003 + self.epoch * 7919 + i) % 2 ** 31)
            image, label = augment(image, label, self.size, rng, ignore, self.scale,
                                   self.jitter)
        else:
            w, h = self.size
            interp = cv2.INTER_AREA if w <= image.shape[1] else cv2.INTER_LINEAR
            image = cv2.resize(image, (w, h), interpolation=interp)     # as jetseg's runtime
        return (torch.from_numpy(to_tensor(image, self.mean, self.std)),
                torch.from_numpy(label.astype(np.int64)))


def class_weights(dataset, num_classes, mode, limit=200):
    """Median-frequency ('median') or 1/sqrt(frequency) ('sqrt') weights from the labels."""
    counts = np.zeros(num_classes, np.float64)
    step = max(1, len(dataset) // limit)
    for i in range(0, len(dataset), step):
        lab = dataset[i][1]
        lab = lab[lab != dataset.ignore_index]
        counts += np.bincount(lab.ravel(), minlength=num_classes)[:num_classes]
    freq = counts / max(1.0, counts.sum())
    freq[freq == 0] = freq[freq > 0].min() if (freq > 0).any() else 1.0
    if mode == "median":
        w = np.median(freq) / freq
    else:
        w = 1.0 / np.sqrt(freq)
        w = w / w.mean()
    return np.clip(w, 0.05, 20.0).astype(np.float32)


# ---- pictures ------------------------------------------------------------------------
def draw_curves(path, rows):
    """Loss and validation mIoU per epoch as a PNG (OpenCV drawing, no matplotlib)."""
    import cv2
    from jetseg.files import write_image
    W, H, m = 720, 360, 50
    img = np.full((H, W, 3), 255, np.uint8)
    epochs = [r["epoch"] for r in rows]
    if not epochs:
        return
    x0, x1 = m, W - m
    y0, y1 = H - m, m

    def xs(e):
        return int(x0 + (x1 - x0) * (e - epochs[0]) / float(max(1, epochs[-1] - epochs[0])))

    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    for key, colour, top in (("loss", (200, 80, 0), max(r["loss"] for r in rows) or 1.0),
                             ("miou", (0, 140, 0), 1.0)):
        pts = [(xs(r["epoch"]), int(y0 - (y0 - y1) * min(1.0, r[key] / top))) for r in rows
               if r[key] is not None]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 2, colour, -1)
    scored = [r for r in rows if r["miou"] is not None]
    best = max(scored, key=lambda r: r["miou"]) if scored else None
    cv2.putText(img, "train loss (max {:.3f})".format(max(r["loss"] for r in rows)), (x0, 30),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 80, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "val mIoU (best {:.1%} @ epoch {})".format(best["miou"], best["epoch"] + 1)
                if best else "no validation", (x0 + 260, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 140, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "epoch {}".format(epochs[0] + 1), (x0, H - 20), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "epoch {}".format(epochs[-1] + 1), (x1 - 70, H - 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    write_image(path, img)


# ---- the loop ---------------------------------------------------------------------------
def _dist():
    import torch.distributed as dist
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        import torch
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return world, rank


def _save(path, obj):
    import torch
    tmp = path + ".part"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def logits_of(out):
    if isinstance(out, dict):
        return out["out"], out.get("aux")
    return out, None


def train(args, data=None):
    """One run; ``data`` = (train, val) frames chosen by the caller (the fold runner), else
    they come from the flags (``folds.open_frames``). Returns the best val mIoU."""
    import torch
    from jetseg.core.modelinfo import parse_size
    from .archs import build_arch
    from .folds import Frames, open_frames, write_frames
    from .progress import Progress

    world, rank = _dist()
    main_proc = rank == 0
    Progress.enabled = main_proc and not args.quiet
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    size = parse_size(args.input_size)
    scale, jitter = parse_scale(args.scale), args.jitter
    train_ds, val_ds = data if data is not None else open_frames(args)
    held = getattr(train_ds, "held", None)
    names, colors = list(train_ds.names), [tuple(c) for c in train_ds.colors]
    num_classes = len(names)
    device = torch.device(args.device if args.device != "auto" else
                          ("cuda:{}".format(rank % max(1, torch.cuda.device_count()))
                           if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    net = build_arch(args.arch, num_classes, aux_loss=args.aux_loss).to(device)
    has_aux = getattr(net, "aux_classifier", None) is not None
    weights = None
    if args.class_weights != "none":
        weights = torch.from_numpy(class_weights(train_ds, num_classes, args.class_weights))
        if main_proc:
            log.info("class weights: %s", ", ".join("{} {:.2f}".format(n, w) for n, w in
                                                    zip(names, weights.tolist())))
        weights = weights.to(device)
    criterion = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=train_ds.ignore_index)
    params = [p for p in net.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    tset = TrainSet(train_ds, size, True, args.seed, IMAGENET_MEAN, IMAGENET_STD)
    tset.scale, tset.jitter = scale, jitter
    vset = None if val_ds is None else TrainSet(val_ds, size, False, args.seed, IMAGENET_MEAN,
                                                IMAGENET_STD)
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(tset, shuffle=True, seed=args.seed)
    g = torch.Generator()
    g.manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        tset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=args.workers, drop_last=len(tset) > args.batch_size, generator=g,
        persistent_workers=False)
    steps_per_epoch = max(1, len(loader))
    total_steps = steps_per_epoch * args.epochs

    def lr_at(step):
        t = min(1.0, step / float(max(1, total_steps)))
        warm = min(1.0, (step + 1) / float(max(1, args.warmup * steps_per_epoch))) \
            if args.warmup else 1.0
        f = (1 - t) ** 0.9 if args.schedule == "poly" else 0.5 * (1 + math.cos(math.pi * t))
        return args.lr * warm * f

    os.makedirs(args.output, exist_ok=True)
    last_path = os.path.join(args.output, "last.pth")
    best_path = os.path.join(args.output, "best.pth")
    start_epoch, best, rows, conf_state = 0, -1.0, [], {}
    if args.resume:
        if not os.path.isfile(last_path):
            raise JetsegError("nothing to resume", path=last_path,
                              fix="train once without --resume into that folder")
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        if ck.get("arch") != args.arch or ck.get("num_classes") != num_classes:
            raise JetsegError("last.pth is a {} for {} classes, not a {} for {}".format(
                ck.get("arch"), ck.get("num_classes"), args.arch, num_classes),
                path=last_path, fix="resume with the same --arch and dataset")
        if ck.get("holdout") != held:
            raise JetsegError("last.pth was trained holding out {}, not {}".format(
                ", ".join(ck.get("holdout") or ["no sequence"]),
                ", ".join(held or ["no sequence"])), path=last_path,
                fix="resume with the same --holdout, or train into another --output")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best, rows = ck["epoch"] + 1, ck.get("best_miou", -1.0), ck.get("log", [])
        conf_state = dict((k, ck[k]) for k in ("confusion", "confusion_epoch") if k in ck)
        if main_proc:
            log.info("resumed from %s at epoch %d (best mIoU %.1f%%)", last_path, start_epoch,
                     100 * best)
    model = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    folder = os.path.basename(os.path.abspath(args.dataset))     # named once if it is the format
    meta = {"version": CKPT_VERSION, "arch": args.arch, "num_classes": num_classes,
            "classes": names, "colors": [list(c) for c in colors], "input_size": list(size),
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channel_order": "RGB",
            "ignore_index": int(train_ds.ignore_index), "dataset": "{} ({}{} images)".format(
                args.format, "" if folder == args.format else folder + ", ", len(train_ds)),
            "miou_definition": metrics.MIOU_DEFINITION, "holdout": held}
    if main_proc:
        with open(os.path.join(args.output, "train.json"), "w") as f:
            json.dump(dict(vars(args), **meta), f, indent=1, default=str)
        if isinstance(train_ds, Frames):        # frames chosen here: say which
            write_frames(args.output, train_ds, val_ds)
    label = getattr(args, "fold_label", "")
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        tset.epoch = epoch
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        losses = []
        bar = Progress(steps_per_epoch, "{}epoch {}/{}".format(label, epoch + 1, args.epochs),
                       unit="batch")
        for x, y in loader:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            x, y = x.to(device), y.to(device)
            out, aux = logits_of(model(x))
            loss = criterion(out, y)
            if aux is not None and has_aux:
                loss = loss + 0.4 * criterion(aux, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.advance()
        bar.close()
        miou = pixel_acc = None
        ious = [float("nan")] * num_classes
        if vset is not None and ((epoch + 1) % args.val_every == 0 or epoch + 1 == args.epochs):
            conf = validate(model, vset, val_ds, num_classes, device, world, rank,
                            args.val_limit)
            ious = metrics.per_class_iou(conf)
            # a split without one labelled pixel scores 0, not NaN (best.pth compares)
            miou = float(np.nan_to_num(metrics.miou(conf)))
            pixel_acc = float(np.nan_to_num(metrics.pixel_accuracy(conf)))
            conf_state = {"confusion": conf.tolist(), "confusion_epoch": epoch}
        if not main_proc:
            continue
        row = {"epoch": epoch, "lr": lr_at(step), "loss": float(np.mean(losses)),
               "miou": miou, "pixel_acc": pixel_acc, "seconds": time.time() - t0}
        row.update(("iou_" + n, float(v) if np.isfinite(v) else None) for n, v in
                   zip(names, ious))
        rows.append(row)
        if miou is not None and miou > best:
            best = miou
            _save(best_path, dict(meta, model=net.state_dict(), epoch=epoch, miou=miou))
        state = dict(meta, model=net.state_dict(), optimizer=opt.state_dict(), epoch=epoch,
                     best_miou=best, log=rows, **conf_state)
        if miou is not None:            # export records it as the model's val mIoU
            state["miou"] = miou
        _save(last_path, state)
        _write_log(os.path.join(args.output, "log.csv"), rows)
        draw_curves(os.path.join(args.output, "curves.png"), rows)
        print("{}epoch {:>3}/{}  loss {:.4f}  val mIoU {}  pixel acc {}  best {}  {:.0f}s".format(
            label, epoch + 1, args.epochs, row["loss"], _pct(miou), _pct(pixel_acc),
            _pct(best if best >= 0 else None), row["seconds"]))
        sys.stdout.flush()
    if main_proc and vset is None:
        final_path = os.path.join(args.output, "final.pth")
        _save(final_path, dict(meta, model=net.state_dict(), epoch=args.epochs - 1))
        print("no validation: {} is the model after epoch {} (export it with jetseg export "
              "--checkpoint)".format(final_path, args.epochs))
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    return best


def validate(model, vset, val_ds, num_classes, device, world, rank, limit=None):
    """Confusion matrix on the validation split: scores upsampled bilinearly to each
    label's own resolution before argmax (what the exported graph does)."""
    import torch
    import torch.nn.functional as F
    from .progress import Progress
    model.eval()
    conf = metrics.Confusion(num_classes, val_ds.ignore_index)
    n = len(vset) if not limit else min(limit, len(vset))
    mine = list(range(rank, n, world))
    bar = Progress(len(mine), "validate", unit="img")
    with torch.no_grad():
        for i in mine:
            x, _ = vset[i]
            label = val_ds[i][1]
            out, _ = logits_of(model(x[None].to(device)))
            out = F.interpolate(out, size=label.shape, mode="bilinear", align_corners=False)
            pred = out[0].argmax(0).cpu().numpy()
            conf.add(label, pred)
            bar.advance()
    bar.close()
    counts = conf.counts
    if world > 1:
        import torch.distributed as dist
        t = torch.from_numpy(counts).to(device)
        dist.all_reduce(t)
        counts = t.cpu().numpy()
    return counts


def _pct(v):
    return "  -   " if v is None else "{:5.1%}".format(v)


def parse_scale(text):
    try:
        lo, hi = (float(v) for v in str(text).split(","))
    except ValueError:
        lo = hi = -1.0
    if not 0 < lo <= hi:
        raise JetsegError("--scale {!r}: expected MIN,MAX with 0 < MIN <= MAX".format(text),
                          fix="e.g. --scale 0.5,2.0")
    return lo, hi


def _write_log(path, rows):
    keys = list(rows[0].keys())
    tmp = path + ".part"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def build_parser(prog="jetseg train"):
    from jetseg.cli.common import ArgumentParser     # suggests the closest flag
    p = ArgumentParser(prog=prog, description="Train a segmentation net on a labelled "
                                "dataset; checkpoints export with jetseg export. Validate on "
                                "a split, on whole held-out sequences (--holdout, --folds), "
                                "or not at all for the final model (--no-val).")
    p.add_argument("--arch", required=True, help="network (see jetseg export --help)")
    p.add_argument("--dataset", required=True, help="dataset root folder")
    p.add_argument("--format", default="camvid", help="camvid, digits, kitti-road, coco, "
                   "cityscapes, drone (default %(default)s)")
    g = p.add_argument_group("which frames")
    g.add_argument("--train-split", default="train", help="split to train on; trainval = "
                   "the train split plus --val-split, for the final model with --no-val "
                   "(default %(default)s)")
    g.add_argument("--val-split", default="val", help="split to validate on (pooled with "
                   "train by --holdout, --folds and --train-split trainval) "
                   "(default %(default)s)")
    g.add_argument("--no-val", action="store_true", help="no validation: train the fixed "
                   "--epochs and write final.pth, the model after the last epoch (no "
                   "best.pth: no epoch is chosen)")
    g.add_argument("--holdout", metavar="SEQ[,SEQ]", help="validate on these whole sequences "
                   "and train on every other frame of train + --val-split (CamVid: the "
                   "file-name prefix, e.g. 0016E5); the files used go to OUTPUT/frames.json")
    g.add_argument("--folds", choices=("sequences",), help="hold out each sequence in turn "
                   "into OUTPUT/fold-<SEQ>/ (each resumable with --resume), then write "
                   "OUTPUT/folds.json, folds.txt, folds.png: each fold's mIoU and per-class "
                   "IoU at the last epoch and their mean")
    g.add_argument("--val-every", type=int, default=1, metavar="N", help="validate every N "
                   "epochs and after the last (default %(default)s)")
    g.add_argument("--val-limit", type=int, help="validate on the first N images only "
                   "(default: all)")
    g.add_argument("--skip-bad", action="store_true", help="leave out unreadable or "
                   "mismatched samples (counted) instead of failing")
    g = p.add_argument_group("recipe")
    g.add_argument("--input-size", default="480x360", help="WxH crops for training and the "
                   "size the net will run at (default %(default)s)")
    g.add_argument("--epochs", type=int, default=100, help="epochs (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=8, help="images a step "
                   "(default %(default)s)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate "
                   "(default %(default)s)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="(default %(default)s)")
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="AdamW, or SGD with momentum 0.9 (default %(default)s)")
    g.add_argument("--schedule", choices=("poly", "cosine"), default="poly",
                   help="learning-rate decay over all steps (poly: power 0.9) "
                   "(default %(default)s)")
    g.add_argument("--warmup", type=int, default=1, help="warm-up epochs, linear "
                   "(default %(default)s)")
    g.add_argument("--class-weights", choices=("none", "median", "sqrt"), default="sqrt",
                   help="loss weight a class: median frequency balancing, 1/sqrt(frequency) "
                   "or none (default %(default)s)")
    g.add_argument("--scale", default="0.5,2.0", metavar="MIN,MAX", help="random scale "
                   "range of the training crops, relative to the input size "
                   "(default %(default)s)")
    g.add_argument("--jitter", type=float, default=0.3, help="brightness, contrast and "
                   "saturation jitter, +-fraction; 0 turns it off (default %(default)s)")
    g.add_argument("--aux-loss", action="store_true", help="torchvision aux head (0.4 x)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and "
                   "augmentation (default %(default)s)")
    g = p.add_argument_group("running")
    g.add_argument("--workers", type=int, default=2, help="data loader processes "
                   "(default %(default)s)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 "
                   "(default %(default)s: cuda when there is one)")
    g.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pth "
                   "(with --folds: every fold from its own, complete folds are kept)")
    g.add_argument("-o", "--output", required=True, help="run folder")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="full tracebacks")
    return p


def read_state(path):
    """last.pth without its weights' device, or None when there is none."""
    import torch
    if not os.path.isfile(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def run(args):
    if args.folds:
        from .folds import run_folds
        return run_folds(args, train, read_state)
    return train(args)


def main(argv=None, prog="jetseg train"):
    from jetseg.cli.common import run_guarded
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.stderr.write("{}: error: needs PyTorch (fix: pip install 'jetseg[export]')\n"
                         .format(prog))
        return 2
    return run_guarded(build_parser(prog), lambda a: 0 if run(a) is not None else 1, argv,
                       prog=prog)


if __name__ == "__main__":
    sys.exit(main())
