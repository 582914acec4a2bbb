"""AdamW, SGD with momentum and the sum of squares in Numba: the twins of csrc/adamw.c (see that
file for the formulas), loop for loop. They match fasttrain.kernels.ref.adamw bit for bit: the
scalars are rounded to the arrays' dtype before the loops, and Numba without fastmath neither
fuses multiply-adds nor reorders, so each element runs the reference's IEEE operations in its
order. The sum of squares uses csrc/adamw.c's blocks and lanes, so it equals the C result too.
"""
import numpy as np
from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads

# Stand-ins for sgd_step's buffer when momentum == 0: the kernel neither reads nor writes it.
_NO_BUF = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1)}

SS_BLOCK_MIN = 4096   # as csrc/adamw.c
SS_BLOCKS_MAX = 1024
SS_LANES = 16


@njit(cache=True, nogil=True, parallel=True)
def _adamw(p, m, v, grad, v_max, amsgrad, small_w1, decay, w1, w1c, beta2, w2, bc2_sqrt, eps,
           neg_step_size, scale):
    # p, m, v (P,) =, grad (P,), v_max (P,) = if amsgrad; the scalars are of the arrays' dtype;
    # w1c = 1 - w1
    for i in prange(p.shape[0]):
        g = grad[i] * scale
        if small_w1:  # torch's lerp, in the form it picks for the weight w1 (see csrc/adamw.c)
            mi = m[i] + w1 * (g - m[i])
        else:
            mi = g - (g - m[i]) * w1c
        vi = v[i] * beta2 + w2 * g * g
        m[i] = mi
        v[i] = vi
        if amsgrad:  # v_max = maximum(v_max, v), NaN propagating as torch.maximum
            vm = v_max[i]
            if vi > vm or vi != vi:
                vm = vi
            v_max[i] = vm
            vi = vm
        denom = np.sqrt(vi) / bc2_sqrt + eps
        p[i] = p[i] * decay + neg_step_size * mi / denom


def adamw_step(param, grad, m, v, *, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
               v_max=None):
    # param, grad, m, v (and v_max): one shape, C-contiguous; flattened to (P,) views
    real = param.dtype.type
    bias_correction1 = 1 - beta1**step                   # once per call, in double
    bias_correction2 = 1 - beta2**step
    w1 = real(1 - beta1)
    use_library_threads()
    amsgrad = v_max is not None
    _adamw(param.reshape(-1), m.reshape(-1), v.reshape(-1), grad.reshape(-1),
           v_max.reshape(-1) if amsgrad else _NO_BUF[param.dtype], amsgrad, bool(w1 < 0.5),
           real(1 - lr * weight_decay), w1, real(1) - w1, real(beta2), real(1 - beta2),
           real(bias_correction2**0.5), real(eps), real(-(lr / bias_correction1)),
           real(grad_scale))


@njit(cache=True, nogil=True, parallel=True)
def _sgd(p, buf, grad, neg_lr, momentum, damp_w, has_momentum, nesterov, wd, has_wd, scale):
    # p (P,) =, buf (P,) = (if has_momentum), grad (P,); the scalars of the arrays' dtype
    for i in prange(p.shape[0]):
        g = grad[i] * scale
        if has_wd:
            g = g + wd * p[i]
        if has_momentum:
            b = buf[i] * momentum + damp_w * g  # damp_w = 1 - dampening; g*1 == g exactly
            buf[i] = b
            g = g + momentum * b if nesterov else b
        p[i] = p[i] + neg_lr * g


def sgd_step(param, grad, buf, *, lr, momentum, dampening, nesterov, weight_decay, grad_scale):
    # param, grad, buf: one shape, C-contiguous; buf None if momentum == 0
    real = param.dtype.type
    b = buf.reshape(-1) if momentum != 0 else _NO_BUF[param.dtype]
    use_library_threads()
    _sgd(param.reshape(-1), b, grad.reshape(-1), real(-lr), real(momentum),
         real(1 - dampening), momentum != 0,
         bool(nesterov), real(weight_decay), weight_decay != 0, real(grad_scale))


@njit(cache=True, nogil=True)
def _sumsq_block(x, lo, hi):
    acc = np.zeros(SS_LANES)
    i = lo
    while i + SS_LANES <= hi:
        for k in range(SS_LANES):
            xk = np.float64(x[i + k])
            acc[k] += xk * xk
        i += SS_LANES
    k = 0
    while i < hi:
        xk = np.float64(x[i])
        acc[k] += xk * xk
        i += 1
        k += 1
    w = SS_LANES // 2
    while w > 0:  # pairwise, in a fixed order
        for k in range(w):
            acc[k] += acc[k + w]
        w //= 2
    return acc[0]


@njit(cache=True, nogil=True, parallel=True)
def _sum_of_squares(x):
    # x (n,); blocks whose size depends only on n, their sums added in order
    n = x.shape[0]
    block = (n + SS_BLOCKS_MAX - 1) // SS_BLOCKS_MAX
    block = SS_BLOCK_MIN if block < SS_BLOCK_MIN else (block + 63) // 64 * 64
    nblocks = (n + block - 1) // block
    sums = np.empty(nblocks)
    for b in prange(nblocks):
        sums[b] = _sumsq_block(x, b * block, min(n, (b + 1) * block))
    total = 0.0
    for b in range(nblocks):
        total += sums[b]
    return total


def sum_of_squares(x):
    # x any shape, C-contiguous
    if x.size == 0:
        return 0.0
    use_library_threads()
    return float(_sum_of_squares(x.reshape(-1)))
