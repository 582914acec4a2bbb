"""Multi-head self-attention, the reference: the plain definition, whole (T, T) matrices per head.
Matches torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
and its autograd gradients, with q, k, v the (B, nh, T, hs) views of qkv's thirds.

Per batch and head, with S = scale * q k^T (T, T) and, if causal, the entries j > i masked:
    lse = log sum_j exp(S_ij) over the unmasked j,   P = exp(S - lse) (0 where masked)
    out = P v  (the heads side by side: (B, T, C), as y.transpose(1, 2).view(B, T, C))
    backward, the chain rule through each step:
    dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(P * dP)),  dq = scale dS k,
    dk = scale dS^T q
A masked score is the constant -inf, not a function of q or k: its pair (i, j) takes no part in
any sum, not even as 0 * x, so a NaN or inf in token j's k or v reaches no earlier token (as in
the C kernel, which skips such pairs, and in a model, where a token cannot see later ones). So the
causal products of (T, T) matrices with (T, hs) ones below sum each row over its own unmasked
range, a row at a time. The backward recomputes P from qkv; the out and lse it is given (what the
flash-style kernels use instead) are not read.
"""
import numpy as np


def _heads(qkv, n_head):
    # qkv (B, T, 3C) -> q, k, v each (B, nh, T, hs)
    B, T, C3 = qkv.shape
    hs = C3 // 3 // n_head
    x = qkv.reshape(B, T, 3, n_head, hs)
    return (x[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def _mask(T, causal):
    # (T, T) True where key j is hidden from query i
    return np.triu(np.ones((T, T), bool), 1) if causal else np.zeros((T, T), bool)


def _lower(A, X, causal):
    # (B, nh, T, T) A, (B, nh, T, hs) X -> Y_i = sum over the j X may pair with i (j <= i when
    # causal) of A_ij X_j, (B, nh, T, hs)
    if not causal:
        return A @ X
    Y = np.empty(A.shape[:3] + X.shape[3:], dtype=np.result_type(A, X))
    for i in range(A.shape[2]):
        Y[:, :, i] = (A[:, :, i:i + 1, :i + 1] @ X[:, :, :i + 1])[:, :, 0]
    return Y


def _upper(A, X, causal):
    # Y_j = sum over the i that may pair with j (i >= j when causal) of A_ij X_i: A^T X
    if not causal:
        return A.transpose(0, 1, 3, 2) @ X
    Y = np.empty(A.shape[:2] + (A.shape[3],) + X.shape[3:], dtype=np.result_type(A, X))
    for j in range(A.shape[3]):
        Y[:, :, j] = (A[:, :, j:, j][:, :, None, :] @ X[:, :, j:])[:, :, 0]
    return Y


@np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore")  # NaN/inf propagate
def _probabilities(q, k, causal, scale):
    # q, k (B, nh, T, hs) -> P (B, nh, T, T), lse (B, nh, T), mask (T, T)
    T = q.shape[2]
    mask = _mask(T, causal)
    S = np.where(mask, -np.inf, scale * (q @ k.transpose(0, 1, 3, 2)))  # (B, nh, T, T)
    m = S.max(axis=-1, keepdims=True, initial=-np.inf)                  # (B, nh, T, 1)
    e = np.where(mask, 0, np.exp(S - m))
    s = e.sum(axis=-1, keepdims=True)
    return e / s, (m + np.log(s))[..., 0], mask


@np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore")
def attention_forward(qkv, out, lse, *, n_head, causal, scale):
    # qkv (B, T, 3C); out (B, T, C) =, lse (B, n_head, T) =
    B, T, C3 = qkv.shape
    q, k, v = _heads(qkv, n_head)
    P, row_lse, _ = _probabilities(q, k, causal, scale)
    y = _lower(P, v, causal)                                            # (B, nh, T, hs)
    out[...] = y.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3)
    lse[...] = row_lse
    return out, lse


@np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore")
def attention_backward(qkv, out, lse, dout, dqkv, *, n_head, causal, scale):
    # qkv (B, T, 3C), out (B, T, C) and lse (B, n_head, T) not read, dout (B, T, C);
    # dqkv (B, T, 3C) =
    B, T, C3 = qkv.shape
    hs = C3 // 3 // n_head
    q, k, v = _heads(qkv, n_head)
    P, _, mask = _probabilities(q, k, causal, scale)
    dy = dout.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)            # (B, nh, T, hs)
    dv = _upper(P, dy, causal)                                          # (B, nh, T, hs)
    dP = np.where(mask, 0, dy @ v.transpose(0, 1, 3, 2))                # (B, nh, T, T)
    dS = np.where(mask, 0, P * (dP - (P * dP).sum(axis=-1, keepdims=True)))
    dq = scale * _lower(dS, k, causal)
    dk = scale * _upper(dS, q, causal)
    grads = np.stack([dq, dk, dv], axis=2)                              # (B, nh, 3, T, hs)
    dqkv[...] = grads.transpose(0, 3, 2, 1, 4).reshape(B, T, C3)
    return dqkv
