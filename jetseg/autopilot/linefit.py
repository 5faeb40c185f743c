"""Fitting the sky/ground line of ``estimate_horizon`` (jetseg.autopilot.horizon).

``coarse_line``: a half-plane search on a small weight map (+1 sky, -1 ground, 0 ignored)
says on which side the sky is and roughly where the line runs. ``boundary_points``: one
sky/ground split per column (or per row, for lines steeper than 45 degrees). ``robust_line``:
RANSAC on point pairs, then Tukey-weighted total least squares. Coordinates are continuous
(pixel (i, j) covers [i, i+1) x [j, j+1)); every step is vectorised numpy.
"""
import functools
import math

import numpy as np


def _grid(shape, step, offset):
    """Sample centres (continuous coords) of a strided view along one axis length."""
    return offset + np.arange(shape) * step + 0.5


@functools.lru_cache(maxsize=64)
def _xy1(shape):
    """3 x h*w float64 rows x, y, 1 of every sample of a map this shape (made once, shared)."""
    ys, xs = np.indices(shape)
    return np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size, np.intp)]).astype(np.float64)


def _half_plane(w, step, th):
    """Best half-plane for the sky on a small weight map ``w`` (+1 sky, -1 ground, 0
    ignored; both sky and ground present), over normal angles ``th``.

    ``step`` is the pixels of the class map per sample. For each angle, histogram the
    weights along the normal (cos, sin) in bins one sample wide and pick the threshold (and
    side) that puts the most sky on one side and the most ground on the other. Returns
    (normal towards the sky, rho, angle)."""
    c, s = np.cos(th), np.sin(th)
    h, wd = w.shape
    lo = np.minimum(0.0, c * (wd - 1)) + np.minimum(0.0, s * (h - 1))   # the grid's lowest
    nb = int(math.ceil(math.hypot(h, wd))) + 2
    n = len(th) * nb
    # bin of each projection, angle k's bins starting at k * nb: one matrix product, one
    # weighted histogram (sky counts +1, ground -1, ignored 0)
    proj = np.stack([c, s, np.arange(len(th)) * nb - lo], axis=1)
    wts = np.broadcast_to(w.reshape(1, -1), (len(th), w.size)).ravel()
    hist = np.bincount(proj.dot(_xy1(w.shape)).astype(np.intp).ravel(), wts, minlength=n)
    cum = np.cumsum(hist.reshape(len(th), nb), axis=1)   # sum of weights in bins <= t
    pos = float(w.sum(dtype=np.int64)) - cum    # sky on the + side of the threshold
    ia, it = np.unravel_index(np.argmax(pos), pos.shape)
    ja, jt = np.unravel_index(np.argmax(cum), cum.shape)
    if pos[ia, it] >= cum[ja, jt]:
        a, t, sign = ia, it, 1.0
    else:
        a, t, sign = ja, jt, -1.0
    centre = step // 2 + 0.5                   # sample i sits at i * step + centre
    rho = (lo[a] + t + 1) * step + (c[a] + s[a]) * centre   # upper edge of bin t
    return np.array([sign * c[a], sign * s[a]]), sign * rho, th[a]


def coarse_line(w, step):
    """Area-based first guess: 7.5 degree steps over 180 degrees, then 2 degree steps.

    It says on which side the sky is and roughly where the line runs: within a degree or
    two under trees, poles and noise, but a big ground-class occluder straddling the line
    (a wing) can pull it 10+ degrees, so the fit below only uses it as a loose prior.
    """
    half, hstep = w[::2, ::2], 2 * step       # the 7.5 degree search: every 2nd sample,
    if not ((half > 0).any() and (half < 0).any()):   # unless that loses the sky or ground
        half, hstep = w, step
    _, _, a = _half_plane(half, hstep, np.arange(24) * (math.pi / 24))
    return _half_plane(w, step, a + np.radians(np.arange(-4.0, 4.5, 2.0)))[:2]


def _splits(w, step, offset):
    """Per column of ``w`` (sky on the low-index side): the best boundary and its gain.

    Returns (boundary coordinate along axis 0, column index, valid) where the boundary is
    the split maximising agreement (sky above, ground below) in that column. Columns the
    line does not cross, or whose split is ambiguous, are not valid.
    """
    n = w.shape[0]
    c = np.empty((n + 1, w.shape[1]), np.int32)
    c[0] = 0
    np.cumsum(w, axis=0, dtype=np.int32, out=c[1:])
    k1 = np.argmax(c, axis=0)
    k2 = n - np.argmax(c[::-1], axis=0)         # last maximum
    cols = np.arange(w.shape[1])
    best = c[k1, cols]
    gain = best - np.maximum(c[0], c[n])
    valid = (k1 > 0) & (k2 < n) & (gain >= 2) & (k2 - k1 <= 2)
    k = 0.5 * (k1 + k2)
    pos = offset + k * step - step / 2.0 + 0.5
    return pos, cols, valid


def boundary_points(w, step, offset, n0):
    """One boundary point (x, y) per column, or per row when the line is steeper than 45
    degrees (``n0``, the coarse normal towards the sky, decides; it also says on which side
    the sky is)."""
    if abs(n0[1]) >= abs(n0[0]):                  # column-wise; sky at the top if n0y < 0
        pos, idx, ok = _splits(w if n0[1] < 0 else -w, step, offset)
        return np.stack([_grid(w.shape[1], step, offset)[idx[ok]], pos[ok]], axis=1)
    wt = w.T                                      # row-wise; sky on the left if n0x < 0
    pos, idx, ok = _splits(wt if n0[0] < 0 else -wt, step, offset)
    return np.stack([pos[ok], _grid(w.shape[0], step, offset)[idx[ok]]], axis=1)


def _tls(P, wts):
    """Weighted total-least-squares line through points P (n x 2): (normal, rho)."""
    m = wts.dot(P) / wts.sum()
    d = P - m
    (cxx, cxy), (_, cyy) = (d * wts[:, None]).T.dot(d)
    th = 0.5 * math.atan2(2.0 * cxy, cxx - cyy)   # principal (line) direction
    nrm = np.array([-math.sin(th), math.cos(th)])
    return nrm, float(nrm.dot(m))


def _median(a):
    """np.median of a non-empty 1-D array, without its per-call overhead."""
    k = len(a) // 2
    if len(a) % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return 0.5 * (float(p[k - 1]) + float(p[k]))


_PAIRS = {}


def _pairs(n, seed, trials):
    """The RANSAC point pairs for ``n`` points (the same draw every time, made once)."""
    key = (n, seed, trials)
    if key not in _PAIRS:
        if len(_PAIRS) > 512:
            _PAIRS.clear()
        rs = np.random.RandomState(seed)
        _PAIRS[key] = (rs.randint(n, size=trials), rs.randint(n, size=trials))
    return _PAIRS[key]


def robust_line(P, thr, init, max_turn_deg=30.0, seed=0, trials=96):
    """RANSAC on point pairs, then Tukey-weighted TLS: (normal, rho, inlier mask).

    ``init`` = (normal towards the sky, rho) of the coarse line. Candidates more than
    ``max_turn_deg`` from it are not considered. The RANSAC cost (MSAC) is asymmetric:
    clutter of ground classes (trees, poles, a wing) only ever puts boundary points on the
    sky side of the true line, so a candidate that leaves many points on its ground side
    (beyond ``thr``) is charged 9x more for them than for points on its sky side.
    """
    i, j = _pairs(len(P), seed, trials)
    d = P[j] - P[i]
    L = np.sqrt((d * d).sum(axis=1))
    keep = L > 1.0
    i, d, L = i[keep], d[keep], L[keep]
    N = np.stack([-d[:, 1], d[:, 0]], axis=1) / L[:, None]
    n0 = np.asarray(init[0], np.float64)
    N *= np.where(N.dot(n0) < 0, -1.0, 1.0)[:, None]     # every normal towards the sky
    rho = (N * P[i]).sum(axis=1)
    N = np.vstack([N, n0[None, :]])
    rho = np.append(rho, init[1])
    R = P.dot(N.T) - rho[None, :]
    t2 = thr * thr
    cost = np.minimum(R * R, np.where(R < 0, 9.0 * t2, t2)).sum(axis=0)
    cost[N.dot(n0) < math.cos(math.radians(max_turn_deg))] = np.inf
    b = int(np.argmin(cost))
    inl = np.abs(R[:, b]) < thr
    if inl.sum() < 2:
        return N[b], rho[b], inl
    nrm, r0 = _tls(P, inl.astype(np.float64))
    for _ in range(3):
        res = P.dot(nrm) - r0
        a = np.abs(res)
        near = a[a < 3 * thr]
        scale = max(1.4826 * _median(near) if len(near) else thr, thr / 4.0)
        u = a / (4.685 * scale)
        wts = np.where(u < 1, (1 - u * u) ** 2, 0.0)
        if wts.sum() < 1e-9 or (wts > 0).sum() < 2:
            break
        nrm, r0 = _tls(P, wts)
    inl = np.abs(P.dot(nrm) - r0) < thr
    return nrm, r0, inl
