"""Language models as forward/backward pairs over a parameter arena.

Every model offers: ``arena`` (its parameters and gradients), ``init(seed)``,
``forward_backward(x, y)`` (the mean loss; gradients added into the arena), ``loss(x, y)``
(no gradients), ``decoder()`` (generation: ``feed(tokens) -> next token's logits``), and
``sequence``: whether y holds the next token of every position of x (B, T) -> y (B, T), the GPT,
or only of the last, (B, T) -> (B,), the MLP.
"""
from fasttrain.models.gpt import GPT
from fasttrain.models.mlp import MLP

__all__ = ["GPT", "MLP", "from_config"]


def from_config(cfg, vocab_size: int):
    """The model a TrainConfig describes (cfg.model), not yet initialised."""
    if cfg.model == "gpt":
        return GPT(vocab_size=vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                   n_head=cfg.n_head, n_embd=cfg.n_embd, eps=cfg.layer_norm_epsilon,
                   backend=cfg.backend)
    return MLP(vocab_size=vocab_size, context=cfg.context, n_embd=cfg.n_embd, hidden=cfg.hidden,
               activation=cfg.activation, backend=cfg.backend, fused_head=cfg.fused_head)
