"""Adaptive pooling to any output size, in ops every target takes, for one fixed input size.

PyTorch's ONNX exporter refuses ``adaptive_avg_pool2d`` / ``adaptive_max_pool2d`` when the
output size does not divide the input (pyramid pooling: PSPNet's and UPerNet's bins 1, 2, 3, 6
on a 64x32 feature map). Once the input size is fixed, every output cell's window is fixed too:
cell ``i`` of ``out`` over ``n`` inputs covers ``[floor(i*n/out), ceil((i+1)*n/out))``, as in
ATen's kernel. Averages and maxima over a rectangle are separable, so the rewrite pools rows,
then columns: one Slice + ReduceMean (or ReduceMax) per output row and column, and a Concat.

    with static_adaptive_pooling():
        torch.onnx.export(net, ...)

Inside the block, ``torch.nn.functional.adaptive_avg_pool2d`` / ``adaptive_max_pool2d`` (which
``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` and ``F.interpolate(mode="area")`` call)
take this path where the sizes do not divide; elsewhere they run unchanged.
"""
import contextlib

import torch
import torch.nn.functional as F


def windows(n, out):
    """[(start, end)] of each of ``out`` adaptive-pooling cells over ``n`` inputs."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def _pool_axis(x, dim, out, reduce):
    n = int(x.shape[dim])
    if out == n:
        return x
    cells = [reduce(x.narrow(dim, s, e - s), dim) for s, e in windows(n, out)]
    return cells[0] if len(cells) == 1 else torch.cat(cells, dim)


def _sizes(x, output_size):
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = output_size
    return h, w, (h if oh is None else int(oh)), (w if ow is None else int(ow))


def _mean(t, dim):
    return t.mean(dim, keepdim=True)


def _max(t, dim):
    return t.amax(dim, keepdim=True)


def static_adaptive_pool2d(x, output_size, mode="avg"):
    """Adaptive 2-D pooling by fixed slices; equals F.adaptive_{avg,max}_pool2d."""
    h, w, oh, ow = _sizes(x, output_size)
    reduce = _mean if mode == "avg" else _max
    return _pool_axis(_pool_axis(x, -2, oh, reduce), -1, ow, reduce)


def _divides(x, output_size):
    h, w, oh, ow = _sizes(x, output_size)
    return oh > 0 and ow > 0 and h % oh == 0 and w % ow == 0


@contextlib.contextmanager
def static_adaptive_pooling():
    """Route 2-D adaptive pooling whose output does not divide its input through slices."""
    avg, mx = F.adaptive_avg_pool2d, F.adaptive_max_pool2d

    def adaptive_avg_pool2d(input, output_size):
        if _divides(input, output_size):
            return avg(input, output_size)
        return static_adaptive_pool2d(input, output_size, "avg")

    def adaptive_max_pool2d(input, output_size, return_indices=False):
        if return_indices or _divides(input, output_size):
            return mx(input, output_size, return_indices)
        return static_adaptive_pool2d(input, output_size, "max")

    F.adaptive_avg_pool2d, F.adaptive_max_pool2d = adaptive_avg_pool2d, adaptive_max_pool2d
    try:
        yield
    finally:
        F.adaptive_avg_pool2d, F.adaptive_max_pool2d = avg, mx


__all__ = ["static_adaptive_pooling", "static_adaptive_pool2d", "windows"]
