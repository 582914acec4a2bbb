"""AdamW, SGD with momentum and the sum of squares, the reference. Matches torch.optim.AdamW and
torch.optim.SGD (their single-tensor path, the CPU default) formula for formula and in their
order of operations, with every scalar rounded to the arrays' dtype as torch rounds a Python
float for a tensor of that dtype. Obvious code: each line is one pass over the arrays (and a
temporary), which is what the fused kernels exist to avoid.

AdamW at step t (from 1), with g = grad_scale * grad:
    p = p * (1 - lr*wd)
    m = lerp(m, g, 1 - beta1)         torch's lerp: m + w*(g - m) if w < 0.5, else g - (g - m)*(1 - w)
    v = v*beta2 + (1 - beta2)*g*g
    v_max = maximum(v_max, v)         AMSGrad only (v_max given): its denominator reads v_max
    p = p + (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
SGD, with g = grad_scale * grad:
    g = g + wd*p                      if wd != 0
    buf = buf*momentum + (1 - dampening)*g   if momentum != 0; then g = g + momentum*buf
                                      (nesterov) or buf
    p = p + (-lr) * g
"""
import numpy as np


@np.errstate(invalid="ignore", divide="ignore", over="ignore")  # NaN/inf propagate, silently
def adamw_step(param, grad, m, v, *, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
               v_max=None):
    # param, grad, m, v (and v_max): one shape, one dtype; param, m, v, v_max updated in place
    real = param.dtype.type
    bias_correction1 = 1 - beta1**step                   # once per call, in double
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1

    g = grad * real(grad_scale)
    param *= real(1 - lr * weight_decay)
    w1 = real(1 - beta1)
    if w1 < 0.5:
        m += w1 * (g - m)
    else:
        m[...] = g - (g - m) * (real(1) - w1)
    v *= real(beta2)
    v += real(1 - beta2) * g * g
    if v_max is not None:                                # torch.maximum: NaN propagates
        np.maximum(v_max, v, out=v_max)
    denom = np.sqrt(v if v_max is None else v_max) / real(bias_correction2**0.5) + real(eps)
    param += real(-step_size) * m / denom


@np.errstate(invalid="ignore", over="ignore")
def sgd_step(param, grad, buf, *, lr, momentum, dampening, nesterov, weight_decay, grad_scale):
    # param, grad, buf: one shape, one dtype; param and buf updated in place; buf None if
    # momentum == 0
    real = param.dtype.type
    g = grad * real(grad_scale)
    if weight_decay != 0:
        g = g + real(weight_decay) * param
    if momentum != 0:
        buf *= real(momentum)
        buf += real(1 - dampening) * g                   # real(1) * g == g: no dampening
        g = g + real(momentum) * buf if nesterov else buf
    param += real(-lr) * g


@np.errstate(invalid="ignore", over="ignore")
def sum_of_squares(x):
    # x: any shape; the squares and their sum in float64 (numpy sums pairwise)
    x64 = x.astype(np.float64)
    return float(np.sum(x64 * x64))
