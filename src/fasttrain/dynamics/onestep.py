"""One training step in numbers, on a five-word vocabulary: "The cat sat" -> "on".

The model's last layer sees a hidden state h (3 numbers) for the context "The cat sat" and
computes logits = W·h + b over the words The, cat, sat, on, mat (W is (5, 3), b is (5,)). W
starts at zero and b at the log-probabilities below, so the probabilities are round numbers a
person can check: p(on) = 0.20, so the loss is -log 0.20 = 1.61 nats, and the gradient of the
loss with respect to the logits is p - onehot(on): -0.80 for "on", +0.50 for "mat". Then one
AdamW step updates all 20 weights in one kernel call over one buffer, as the arena does.
Every number is computed by fasttrain's kernels: linear_forward, softmax_cross_entropy,
linear_backward, adamw_step.
"""
from __future__ import annotations

import math

import numpy as np

WORDS = ("The", "cat", "sat", "on", "mat")
PROBS = (0.15, 0.10, 0.05, 0.20, 0.50)
CONTEXT, TARGET = "The cat sat", "on"
HIDDEN = (0.5, -1.0, 2.0)


def one_step(lr: float = 0.1, beta1: float = 0.9, beta2: float = 0.99,
             weight_decay: float = 0.1, backend=None) -> dict:
    """Every number of one step, as a dict of float64 arrays and floats."""
    from fasttrain.kernels import (adamw_step, linear_backward, linear_forward,
                                   softmax_cross_entropy)

    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    V, C = len(WORDS), len(HIDDEN)
    target = np.array([WORDS.index(TARGET)])            # (N,) = (1,)
    h = np.array([HIDDEN])                              # (N, C) = (1, 3)
    # W and b as views of one buffer: one optimizer call updates both (fasttrain.arena's layout)
    params = np.zeros(V * C + V)                        # (P,) = (20,)
    W, b = params[:V * C].reshape(V, C), params[V * C:]  # (V, C), (V,)
    b[:] = np.log(PROBS)

    logits = linear_forward(h, W, b, backend=backend)   # (1, V)
    loss, dlogits = softmax_cross_entropy(logits, target, backend=backend)
    probs = dlogits[0] + np.eye(V)[target[0]]           # p = dlogits + onehot (mean over 1 row)
    grads = np.zeros_like(params)
    dW, db = grads[:V * C].reshape(V, C), grads[V * C:]
    linear_backward(h, W, dlogits, dx=False, dW=dW, db=db, backend=backend)

    before = params.copy()
    m, v = np.zeros_like(params), np.zeros_like(params)
    # weight decay on the matrix only, as fasttrain.optim does: two calls over two ranges
    adamw_step(params[:V * C], grads[:V * C], m[:V * C], v[:V * C], step=1, lr=lr, beta1=beta1,
               beta2=beta2, weight_decay=weight_decay, backend=backend)
    adamw_step(params[V * C:], grads[V * C:], m[V * C:], v[V * C:], step=1, lr=lr, beta1=beta1,
               beta2=beta2, weight_decay=0.0, backend=backend)

    logits_after = linear_forward(h, W, b, backend=backend)
    loss_after, dlogits_after = softmax_cross_entropy(logits_after, target, backend=backend)
    probs_after = dlogits_after[0] + np.eye(V)[target[0]]
    return {"h": h[0], "logits": logits[0], "probs": probs, "loss": float(loss),
            "dlogits": dlogits[0], "dW": dW.copy(), "db": db.copy(), "before": before,
            "after": params.copy(), "m": m, "v": v, "lr": lr, "beta1": beta1, "beta2": beta2,
            "weight_decay": weight_decay, "logits_after": logits_after[0],
            "probs_after": probs_after, "loss_after": float(loss_after), "V": V, "C": C}


def format_step(r: dict) -> str:
    V, C, t = r["V"], r["C"], WORDS.index(TARGET)
    out = [f'One training step, in numbers. Vocabulary: {", ".join(WORDS)}. Context "{CONTEXT}", '
           f'the next word is "{TARGET}".',
           "",
           f"1. Forward: logits = W.h + b, with h = [{', '.join(f'{x:g}' for x in r['h'])}] the "
           "hidden state of the context, W = 0 and b chosen so the probabilities are round.",
           "   softmax turns logits into probabilities: p_i = exp(logit_i) / sum_j exp(logit_j)",
           "",
           "   word   logit   probability   target   gradient (p - onehot)"]
    for i, w in enumerate(WORDS):
        note = ""
        if i == t:
            note = "   <- the right word: pushed up"
        elif i == int(np.argmax(r["probs"])):
            note = "   <- the likeliest wrong word: pushed down hardest"
        out.append(f"   {w:<5s} {r['logits'][i]:+6.3f}   {r['probs'][i]:9.2f}   "
                   f"{int(i == t):6d}   {r['dlogits'][i]:+10.2f}{note}")
    out += ["",
            f"2. Loss (softmax_cross_entropy): -log p({TARGET}) = -log {r['probs'][t]:.2f} = "
            f"{r['loss']:.2f} nats",
            "",
            "3. Backward (linear_backward): dL/db = p - onehot; dL/dW[i, j] = (p - onehot)[i] * h[j]",
            "",
            f"4. AdamW (adamw_step, lr {r['lr']:g}, betas {r['beta1']:g}/{r['beta2']:g}, weight "
            f"decay {r['weight_decay']:g} on W only), step 1:",
            f"   m = (1 - beta1) g, v = (1 - beta2) g^2; after bias correction m_hat/sqrt(v_hat) "
            f"= g/|g|, so step 1 moves every weight by lr against its gradient's sign.",
            "",
            "   weight      before   gradient        m            v      after"]
    rows = [(f"b[{TARGET}]", V * C + t), (f"b[{WORDS[int(np.argmax(r['probs']))]}]",
                                          V * C + int(np.argmax(r["probs"])))]
    rows += [(f"W[{TARGET},{j}]", t * C + j) for j in range(C)]
    grads = np.concatenate([r["dW"].ravel(), r["db"]])
    for name, k in rows:
        out.append(f"   {name:<10s} {r['before'][k]:+7.3f}   {grads[k]:+8.3f}   {r['m'][k]:+9.4f}  "
                   f"{r['v'][k]:11.6f}   {r['after'][k]:+7.3f}")
    out += ["",
            f"5. After the step: p({TARGET}) {r['probs'][t]:.2f} -> {r['probs_after'][t]:.2f}, "
            f"loss {r['loss']:.2f} -> {r['loss_after']:.2f} nats."]
    return "\n".join(out)
