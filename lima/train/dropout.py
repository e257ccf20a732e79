"""LIMA's residual dropout ramp (paper Section 3, after Ouyang et al. 2022).

"We apply dropout over residual connections, starting at p=0.0 at the bottom layer and linearly
raising the rate to p=0.3 at the last layer (p=0.2 for smaller models)." Layer i of L gets
p_i = p_top * i / (L - 1). The dropout acts on what each decoder layer adds to the residual
stream: out = x + dropout(layer(x) - x), in train mode only.
"""

from __future__ import annotations

from typing import Any


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


def _hook(p: float):
    from torch.nn import functional

    def apply(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
        if not module.training or p == 0.0:
            return None
        x = args[0] if args else kwargs["hidden_states"]
        hidden = output[0] if isinstance(output, tuple) else output
        dropped = x + functional.dropout(hidden - x, p=p, training=True)
        return (dropped, *output[1:]) if isinstance(output, tuple) else dropped

    return apply


def add_residual_dropout(model: Any, p_top: float) -> list[float]:
    """Register the ramp on every decoder layer; returns p per layer (also set as
    `layer.residual_dropout_p` for inspection)."""
    layers = decoder_layers(model)
    probabilities = ramp(p_top, len(layers))
    for layer, p in zip(layers, probabilities, strict=True):
        layer.residual_dropout_p = p
        layer.register_forward_hook(_hook(p), with_kwargs=True)
    return probabilities
