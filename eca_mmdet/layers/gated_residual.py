"""``identity + bn(x) * gate`` without keeping ``bn(x)`` for backward.

A straightforward ECA block computes ``z = bn(x)``, ``out = z * g +
identity``. Autograd then keeps ``z`` alive until backward (the product needs
it for ``dL/dg``): one extra full-size activation per block, about 20% more
peak training memory on ResNet-50. Batch norm already keeps ``x``, and
``z = x * scale + shift`` with per-channel ``scale`` and ``shift``, so

    dL/dg = sum_hw(grad * z) = scale * sum_hw(grad * x) + shift * sum_hw(grad)

needs only ``x`` and two C-vectors. :class:`GatedResidual` is that product
and sum as one autograd node; :func:`gated_residual` picks it where it is
exact and falls back to the plain composition elsewhere.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..utils.compat import is_tracing


class GatedResidual(torch.autograd.Function):
    """``identity + z * gate`` that saves ``x`` instead of ``z``, given
    ``z == x * scale + shift`` (batch norm's output)."""

    @staticmethod
    def forward(ctx, z: Tensor, gate: Tensor, identity: Tensor, x: Tensor,
                scale: Tensor, shift: Tensor) -> Tensor:
        ctx.save_for_backward(gate, x, scale, shift)
        return torch.addcmul(identity, z, gate).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        gate, x, scale, shift = ctx.saved_tensors
        # reduce in at least float32: the two terms can nearly cancel
        acc = torch.promote_types(grad.dtype, torch.float32)
        g = grad.to(acc)
        sum_gx = torch.einsum('nchw,nchw->nc', g, x.to(acc))
        grad_gate = sum_gx * scale + g.sum((2, 3)) * shift
        return (grad * gate, grad_gate.view(gate.shape).to(gate.dtype), grad,
                None, None, None)


def bn_scale_shift(bn: nn.Module,
                   x: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """Per-channel ``scale, shift`` (float32 or wider, no graph) with
    ``bn(x) == x * scale + shift``, or None where they cannot be had here
    (not a batch norm; SyncBN with batch statistics, which spans processes).
    """
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        return None
    batch_stats = bn.training or bn.running_mean is None
    if batch_stats and type(bn) is not nn.BatchNorm2d:
        return None
    acc = torch.promote_types(x.dtype, torch.float32)
    with torch.no_grad():
        if batch_stats:
            # per-(N, C) sums of x and x^2 are contiguous reductions, several
            # times faster than torch.var_mean over (N, H, W) on the CPU;
            # under autocast one cast to float32 first (reductions casting
            # bfloat16 on the fly took twice as long on the CPU)
            count = x.numel() // x.shape[1]
            xa = x.to(acc)
            mean = xa.sum((2, 3)).sum(0) / count
            mean_sq = torch.linalg.vector_norm(
                xa, dim=(2, 3)).square().sum(0) / count
            var = (mean_sq - mean.square()).clamp_min(0)
        else:
            var, mean = bn.running_var, bn.running_mean
        scale = torch.rsqrt(var.to(acc) + bn.eps)
        if bn.affine:
            scale = scale * bn.weight.to(acc)
        shift = -mean.to(acc) * scale
        if bn.affine:
            shift = shift + bn.bias.to(acc)
    return scale[None], shift[None]


def gated_residual(x: Tensor, bn: Optional[nn.Module],
                   attention: nn.Module, identity: Tensor) -> Tensor:
    """``identity + z * attention(z, gate_only=True)`` with ``z = bn(x)``,
    the tail of an ECA residual block before its last ReLU.

    Every module is called as a module (hooks and counters see them). Where
    autograd records and ``bn`` is a batch norm whose affine map is known
    here, :class:`GatedResidual` computes it without keeping ``z`` for
    backward; everywhere else (inference, ``torch.compile``, export,
    tracing, SyncBN with batch statistics, other norms) it is the plain
    composition.

    Args:
        x (Tensor): Input of the block's last normalisation, (N, C, H, W).
        bn (nn.Module, optional): That normalisation layer; None when ``x``
            is already normalised.
        attention (nn.Module): A :class:`ChannelAttention` module.
        identity (Tensor): The residual branch, same shape as ``x``.

    Returns:
        Tensor: ``identity + bn(x) * gate`` in ``bn(x)``'s dtype, like
        mmdet's in-place add (under autocast ``identity`` may be wider).
    """
    z = x if bn is None else bn(x)
    gate = attention(z, gate_only=True)
    affine = None
    if torch.is_grad_enabled() and not is_tracing():
        affine = bn_scale_shift(bn, x)
    if affine is None:
        return torch.addcmul(identity, z, gate).to(z.dtype)
    return GatedResidual.apply(z, gate, identity, x, *affine)
