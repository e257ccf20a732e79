"""LIMA's residual dropout ramp (paper Section 3, after Ouyang et al. 2022).

"We apply dropout over residual connections, starting at p=0.0 at the bottom layer and linearly
raising the rate to p=0.3 at the last layer (p=0.2 for smaller models)." Layer i of L gets
p_i = p_top * i / (L - 1). A pre-norm decoder layer has two residual connections,
`x + attn(norm(x))` and `h + mlp(norm(h))`; each branch gets its own dropout before it is added
back, as GPT-style `resid_pdrop` does. The dropouts are ordinary `nn.Dropout` children of the
layer, so `model.train()` / `model.eval()` switch them on and off with the rest of the model.
"""

from __future__ import annotations

from typing import Any

BRANCHES = (("self_attn", "attn_residual_dropout"), ("mlp", "mlp_residual_dropout"))
"""(branch module of a decoder layer, name of the dropout applied to its output)."""


def ramp(p_top: float, layers: int) -> list[float]:
    if layers == 1:
        return [p_top]
    return [p_top * i / (layers - 1) for i in range(layers)]


def decoder_layers(model: Any) -> Any:
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no decoder layers at .model.layers")
    return layers


def _drop_branch_output(dropout: Any):
    def hook(module: Any, args: tuple, output: Any) -> Any:
        if isinstance(output, tuple):  # attention returns (output, weights)
            return (dropout(output[0]), *output[1:])
        return dropout(output)

    return hook


def add_residual_dropout(model: Any, p_top: float) -> list[float]:
    """Put a dropout on the output of every layer's attention and MLP branch, rate ramped by
    depth; returns p per layer (also `layer.residual_dropout_p`)."""
    from torch import nn

    layers = decoder_layers(model)
    probabilities = ramp(p_top, len(layers))
    for layer, p in zip(layers, probabilities, strict=True):
        layer.residual_dropout_p = p
        for branch_name, dropout_name in BRANCHES:
            branch = getattr(layer, branch_name, None)
            if branch is None:
                raise ValueError(f"{type(layer).__name__} has no {branch_name} branch")
            dropout = nn.Dropout(p)
            layer.add_module(dropout_name, dropout)
            branch.register_forward_hook(_drop_branch_output(dropout))
    return probabilities
