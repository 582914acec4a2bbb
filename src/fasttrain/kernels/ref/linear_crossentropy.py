"""Linear layer + softmax cross-entropy, forward and backward, the reference: the unfused
composition, which is the definition. Matches torch.nn.functional.cross_entropy(
F.linear(x, W, b), targets, ...) and its autograd gradients.

    logits  = x @ W.T + b                        (N, V)   ref.linear.linear_forward
    loss, dlogits = cross-entropy(logits, ...)   (N, V)   ref.crossentropy.softmax_cross_entropy
    dx = dlogits @ W; dW (+)= dlogits.T @ x; db (+)= dlogits.sum(0)   ref.linear.linear_backward

chunk_rows is ignored: the reference holds all N x V logits at once (its whole point is to be
obvious); the fused backends must give the same values for any chunk size.
"""
import numpy as np

from fasttrain.kernels.ref.crossentropy import softmax_cross_entropy
from fasttrain.kernels.ref.linear import linear_backward, linear_forward


def linear_cross_entropy(x, W, b, targets, dx, dW, db, *, ignore_index, reduction,
                         label_smoothing, weight, lse_square_scale, softcap, grad_rows,
                         chunk_rows, accumulate):
    # x (N, C), W (V, C), b (V,) or None, targets (N,) int64; weight (V,) or None;
    # grad_rows (N,) or None; dx (N, C) = or None; dW (V, C) = or +=; db (V,) = or += or None
    logits = np.empty((x.shape[0], W.shape[0]), dtype=x.dtype)  # (N, V)
    linear_forward(x, W, b, logits)
    loss, dlogits = softmax_cross_entropy(logits, targets, logits, ignore_index=ignore_index,
                                          reduction=reduction, label_smoothing=label_smoothing,
                                          weight=weight, lse_square_scale=lse_square_scale,
                                          softcap=softcap, grad_rows=grad_rows)
    linear_backward(x, W, dlogits, dx, dW, db, accumulate=accumulate)
    return loss, dx, dW, db
