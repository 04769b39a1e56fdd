"""The common shape of every channel attention here: pool, excite, gate.

ECA, SE and the paper's analysis variants (Table 2) differ only in how the
pooled descriptor ``y = mean_hw(x)`` (N, C) is mapped to C logits; they all
compute ``out = x * sigmoid(excite(y))``. Subclasses implement
:meth:`ChannelAttention.excite`.

Calling a module with ``gate_only=True`` returns the (N, C, 1, 1) gate instead
of the gated map: ECAResNet's blocks do this and apply the gate themselves
inside the residual add (see :mod:`.gated_residual`). Either way the module is
called once per block forward, so its forward hooks fire. To see the gate from
a hook, register it with ``with_kwargs=True``::

    def hook(module, args, kwargs, output):
        gate = output if kwargs.get('gate_only') else module.gate(args[0])

    block.eca.register_forward_hook(hook, with_kwargs=True)

(in ECAResNet blocks the output is the gate; as an mmdet plugin it is the
gated map, and ``module.gate`` recomputes the gate from the input).
"""
import torch
import torch.nn as nn
from torch import Tensor


def check_positive_int(value, what: str) -> int:
    """Return ``value`` if it is a positive int (not a bool), else raise
    ``ValueError('<what> must be a positive int, got <value>')``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{what} must be a positive int, got {value!r}')
    return value


class ChannelAttention(nn.Module):
    """Base class: ``forward(x) = x * sigmoid(excite(mean_hw(x)))``.

    Args:
        in_channels (int): Number of channels C.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = check_positive_int(
            in_channels, f'{type(self).__name__}: in_channels')

    def excite(self, y: Tensor) -> Tensor:
        """Map pooled features ``y`` (N, C) to gate logits (N, C)."""
        raise NotImplementedError

    def gate(self, x: Tensor) -> Tensor:
        """The attention weights of ``x`` (N, C, H, W), shape (N, C, 1, 1).

        ``mean_hw(x)`` is taken as a sum in at least float32 over ``H * W``:
        the same value as ``AdaptiveAvgPool2d(1)``, safe under AMP with
        channels_last inputs, no float16 overflow, and its backward keeps
        nothing full-size (that of ``mean`` keeps ``x`` on torch 2.1).
        """
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        y = x.sum((2, 3), dtype=acc) / (x.shape[2] * x.shape[3])
        return self.excite(y.to(x.dtype)).sigmoid()[:, :, None, None]

    def forward(self, x: Tensor, gate_only: bool = False) -> Tensor:
        """Return ``x`` scaled channel-wise by its gate, or with
        ``gate_only=True`` the (N, C, 1, 1) gate itself."""
        gate = self.gate(x)
        return gate if gate_only else x * gate

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}'
