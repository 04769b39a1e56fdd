"""Memory-lean ``identity + bn(x) * gate`` for ECA residual blocks.

A straightforward ECA block computes ``z = bn(x)``, ``g = eca_gate(z)`` and
``out = z * g + identity``. For backward, autograd then keeps ``z`` alive (the
multiply needs it to compute ``dL/dg``): one extra full-size activation per
block, 18% more peak training memory on ResNet-50.

Batch norm already keeps its input ``x`` and per-channel statistics, and
``z = x * scale + shift`` with per-channel ``scale``/``shift``. So the gate
gradient can be computed from ``x`` without ever storing ``z``::

    dL/dg[n, c] = sum_hw(grad * z) = scale[c] * sum_hw(grad * x)
                                     + shift[c] * sum_hw(grad)

:func:`bn_gated_residual` runs the normalisation, asks for the gate and
returns ``identity + z * g`` through one fused ``addcmul``; in training it
saves only ``x`` (shared with batch norm), ``g`` and two C-vectors.
"""
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor


PooledInput = Union[None, Tensor, Callable[[], Optional[Tensor]]]


class _GatedResidual(torch.autograd.Function):
    """``identity + z * gate`` whose backward recomputes ``z`` lazily from
    ``src * scale + shift`` instead of saving it."""

    @staticmethod
    def forward(ctx, z: Tensor, gate: Tensor, identity: Tensor, src: Tensor,
                scale: Tensor, shift: Tensor) -> Tensor:
        ctx.save_for_backward(gate, src, scale, shift)
        ctx.identity_dtype = identity.dtype
        return torch.addcmul(identity, z, gate).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        gate, src, scale, shift = ctx.saved_tensors
        grad_z = grad_gate = None
        if ctx.needs_input_grad[0]:
            grad_z = (grad * gate).to(src.dtype)
        if ctx.needs_input_grad[1]:
            # The two terms can nearly cancel (when |mean| >> std of
            # ``src``), so reduce in at least float32; in float32/64 the
            # einsum contracts over H*W without a full-size temporary.
            acc = torch.promote_types(grad.dtype, torch.float32)
            g = grad.to(acc)
            g_src = torch.einsum('nchw,nchw->nc', g, src.to(acc))
            g_one = g.sum((2, 3))
            grad_gate = (g_src * scale + g_one * shift).to(gate.dtype)
            grad_gate = grad_gate.view(gate.shape)
        grad_identity = grad.to(ctx.identity_dtype) \
            if ctx.needs_input_grad[2] else None
        return grad_z, grad_gate, grad_identity, None, None, None


class _PooledAffine(torch.autograd.Function):
    """``mean_hw(z)`` supplied by the caller (computed without reading
    ``z``), with the backward of ``z.mean((2, 3))``: every gradient flows
    through ``z``, so the batch statistics and the layers before the
    normalisation get exactly the gradient they would get from the mean."""

    @staticmethod
    def forward(ctx, z: Tensor, pooled: Tensor) -> Tensor:
        ctx.shape, ctx.dtype = z.shape, z.dtype
        return pooled.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        n, c, h, w = ctx.shape
        grad_z = (grad / (h * w)).to(ctx.dtype).view(n, c, 1, 1)
        return grad_z.expand(n, c, h, w), None


# Below this many elements per block the fixed cost of the fused training
# node (~35 small ops, ~10 us each) exceeds the memory traffic it saves:
# on the 2-core CPU of docs/benchmarks.md (tools/analysis/benchmark_tail.py),
# 2 x 512 x 16 x 16 and 2 x 2048 x 8 x 8 train faster through plain
# autograd, 2 x 256 x 32 x 32 and 2 x 1024 x 16 x 16 through the fused node.
# Peak memory is set by the large maps, where the fused node is used.
FUSE_MIN_NUMEL = 2**19


def _sum_hw_and_sum_hw_product(g: Tensor, x: Tensor) -> Tuple[Tensor,
                                                               Tensor]:
    """``(g.sum((2, 3)), (g * x).sum((2, 3)))`` for (N, C, H, W) tensors.

    For contiguous tensors this is one pass with no temporary: batch norm's
    backward kernel on a (1, N*C, H, W) view, with mean 0 and inverse std 1,
    returns exactly these two per-(N*C) sums as its bias and weight
    gradients. Otherwise the product is materialised."""
    n, c, h, w = x.shape
    if g.is_contiguous() and x.is_contiguous():
        zeros = x.new_zeros(n * c)
        _, sum_gx, sum_g = torch.ops.aten.native_batch_norm_backward(
            g.view(1, n * c, h, w), x.view(1, n * c, h, w), None, None, None,
            zeros, torch.ones_like(zeros), True, 0.0, [False, True, True])
        return sum_g.view(n, c), sum_gx.view(n, c)
    return g.sum((2, 3)), (g * x).sum((2, 3))


def _gate_backward(eca: nn.Module, pooled: Tensor, gate: Tensor,
                   grad_gate: Tensor):
    """Backward of ``eca.gate_from_pooled`` at ``pooled`` (N, C): returns
    ``dL/dpooled`` and one gradient (or None) per ``eca.parameters()``.

    Uses the module's closed-form ``gate_backward`` where it has one (ECA),
    else recomputes the gate's small graph and differentiates it."""
    closed_form = getattr(eca, 'gate_backward', None)
    result = closed_form(pooled, gate, grad_gate) if closed_form else None
    params = list(eca.parameters())
    if result is not None:
        grad_pooled, grads = result
        return grad_pooled, [g if p.requires_grad else None
                             for p, g in zip(params, grads)]
    trained = [p for p in params if p.requires_grad]
    with torch.enable_grad():
        pooled_in = pooled.detach().requires_grad_()
        g = eca.gate_from_pooled(pooled_in)
        grads = iter(torch.autograd.grad(
            g, [pooled_in] + trained, grad_gate.view(g.shape).to(g.dtype),
            allow_unused=True))
    grad_pooled = next(grads)
    return grad_pooled, [next(grads) if p.requires_grad else None
                         for p in params]


class _BNGatedResidual(torch.autograd.Function):
    """``identity + z * gate(mean_hw(z))`` with ``z = batch_norm(x)``: batch
    norm, the gate and the residual in one autograd node.

    Forward allocates what plain ``bn(x); out += identity`` allocates (``z``,
    then the add in place into it) and saves ``x`` as batch norm would.
    Backward writes one full-size tensor, ``dL/dx``, like batch norm's own
    backward; with ``G = dL/dout``, ``g`` the gate, ``P = dL/dmean_hw(z)``
    from the gate's (tiny, recomputed) graph and ``xh`` the normalised input::

        dL/dz = G * g + P / HW
        dL/dg = w * sum_hw(G * xh) + b * sum_hw(G)
        dL/dw = sum_n(g * sum_hw(G * xh) + P * sum_hw(xh) / HW)
        dL/db = sum_n(g * sum_hw(G) + P)
        dL/dx = w * invstd * (dL/dz - dL/db / M - xh * dL/dw / M)

    (the last two terms only with batch statistics, ``M = N * H * W``), all
    from two per-(N, C) reductions of ``G``: ``sum_hw(G * x)`` and
    ``sum_hw(G)``, taken in one pass. ``dL/dx = x * b + c + G * a`` is then
    written into the one full-size tensor the backward allocates.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, identity, pooled_x, eca, batch_stats,
                running_mean, running_var, momentum, eps, *params):
        # x is float32/64 (see _fusable): all the per-channel math below
        # runs in x's dtype, and (N, C) ops are kept few (each costs ~10 us
        # of dispatch, which is what these blocks cost on small maps)
        if batch_stats:
            z, mean, invstd = torch.native_batch_norm(
                x, weight, bias, running_mean, running_var, True, momentum,
                eps)
        else:
            mean = running_mean.to(x.dtype)
            invstd = torch.rsqrt(running_var + eps).to(x.dtype)
            z = torch.batch_norm(x, weight, bias, running_mean, running_var,
                                 False, 0.0, eps, False)
        if pooled_x is None:
            pooled_x = x.mean((2, 3))
        # mean_hw of the normalised x, then of z
        xh_mean = (pooled_x.to(x.dtype) - mean).mul_(invstd)
        if weight is None:
            pooled = xh_mean if bias is None else xh_mean + bias
        elif bias is None:
            pooled = xh_mean * weight
        else:
            pooled = torch.addcmul(bias.to(x.dtype), xh_mean,
                                   weight.to(x.dtype))
        gate = eca.gate_from_pooled(pooled).to(x.dtype)
        ctx.eca, ctx.batch_stats = eca, batch_stats
        ctx.save_for_backward(x, weight, bias, mean, invstd, xh_mean,
                              pooled, gate)
        # z is ours alone (nothing saved it): add in place, like ``+=``
        return torch.addcmul(identity, z, gate, out=z)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, bias, mean, invstd, xh_mean, pooled, gate = \
            ctx.saved_tensors
        n, c, h, w = x.shape
        sum_g, sum_gx = _sum_hw_and_sum_hw_product(grad, x)
        # sum_hw(G * xh) = invstd * (sum_hw(G * x) - mean * sum_hw(G))
        sum_gxh = torch.addcmul(sum_gx, sum_g, mean, value=-1).mul_(invstd)
        # the one full-size tensor this backward writes
        grad_x = torch.empty_like(x)
        wt = None if weight is None else weight.to(x.dtype)
        grad_gate = sum_gxh if wt is None else sum_gxh * wt
        if bias is not None:
            grad_gate = torch.addcmul(grad_gate, sum_g, bias.to(x.dtype))
        # dL/d(pooled mean) and the gate parameters' gradients
        grad_pooled, grad_params = _gate_backward(ctx.eca, pooled, gate,
                                                  grad_gate.view(gate.shape))
        grad_pooled = grad_pooled.view(n, c)
        gate = gate.view(n, c)
        needs = ctx.needs_input_grad
        grad_w = grad_b = None
        if needs[1] or ctx.batch_stats:
            grad_w = torch.addcmul(gate * sum_gxh, grad_pooled,
                                   xh_mean).sum(0)
        if needs[2] or ctx.batch_stats:
            grad_b = torch.addcmul(grad_pooled, gate, sum_g).sum(0)
        scale = invstd if wt is None else wt * invstd
        a = (scale * gate).view(n, c, 1, 1)
        u = grad_pooled * (1.0 / (h * w))
        if ctx.batch_stats:
            m = n * h * w
            b = (scale * invstd).mul_(grad_w).mul_(-1.0 / m)
            u.sub_(grad_b, alpha=1.0 / m)
            cst = u.mul_(scale).addcmul_(mean, b, value=-1)
            # full-size operands first: with a broadcast first operand
            # (``addcmul(cst, x, b)``) PyTorch takes a 2-3x slower kernel
            torch.mul(x, b.view(1, c, 1, 1), out=grad_x)
            grad_x.add_(cst.view(n, c, 1, 1)).addcmul_(grad, a)
        else:
            cst = u.mul_(scale)
            torch.mul(grad, a, out=grad_x).add_(cst.view(n, c, 1, 1))
        return (grad_x if needs[0] else None,
                grad_w.to(weight.dtype) if needs[1] else None,
                grad_b.to(bias.dtype) if needs[2] else None,
                grad if needs[3] else None,
                None, None, None, None, None, None, None, *grad_params)


def _eval_affine(bn: nn.Module):
    """Per-channel ``scale, shift`` of a BN that uses its running stats."""
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.training \
            or bn.running_mean is None:
        return None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = bn.weight * scale
        shift = bn.bias - bn.running_mean * scale
    else:
        shift = -bn.running_mean * scale
    return scale, shift


def _count_batch_and_momentum(bn: nn.Module) -> float:
    """Count a training batch in ``bn.num_batches_tracked`` and return the
    running-statistics momentum, as ``_BatchNorm.forward`` does."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats \
            and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    return momentum


def _affine_of_bn(bn: nn.Module, x: Tensor) -> Tuple[Tensor, Optional[Tensor],
                                                     Optional[Tensor]]:
    """Run ``bn`` on ``x``; also return per-channel ``scale``/``shift`` with
    ``bn(x) == x * scale + shift`` where they can be had for free, else
    ``None``s (then the caller falls back to plain autograd)."""
    if type(bn) is not nn.BatchNorm2d:  # SyncBN, GN, ...: no shortcut
        return bn(x), None, None
    affine = _eval_affine(bn)
    if affine is not None:  # running statistics
        return (bn(x), affine[0].detach().view(1, -1),
                affine[1].detach().view(1, -1))
    weight = bn.weight if bn.affine else None
    bias = bn.bias if bn.affine else None
    momentum = _count_batch_and_momentum(bn)
    z, mean, invstd = torch.native_batch_norm(
        x, weight, bias, bn.running_mean, bn.running_var, True, momentum,
        bn.eps)
    scale = invstd if weight is None else weight * invstd
    shift = -mean * scale if bias is None else bias - mean * scale
    scale = scale.detach().view(1, -1)
    shift = shift.detach().view(1, -1)
    return z, scale, shift


def _fusable(x: Tensor, bn: nn.Module, eca: nn.Module,
             identity: Tensor) -> bool:
    """Whether :class:`_BNGatedResidual` applies: plain ``BatchNorm2d``,
    float32/64 without autocast (reductions and the fused ``dL/dx`` pass
    stay in the input's precision) and eager mode (under ``torch.compile``
    the composite path below is traced and fused by the compiler)."""
    return (type(bn) is nn.BatchNorm2d and x.dim() == 4
            and x.dtype in (torch.float32, torch.float64)
            and identity.dtype == x.dtype
            and hasattr(eca, 'gate_from_pooled')
            and not torch.is_autocast_enabled(x.device.type)
            and not torch.compiler.is_compiling())


def _fused(x: Tensor, bn: nn.BatchNorm2d, eca: nn.Module, identity: Tensor,
           pooled_x: Optional[Tensor]) -> Tensor:
    """Run :class:`_BNGatedResidual`, with ``bn``'s running-statistics
    bookkeeping done as ``BatchNorm2d.forward`` does it."""
    batch_stats = bn.training or bn.running_mean is None
    momentum = _count_batch_and_momentum(bn)
    running_mean, running_var = bn.running_mean, bn.running_var
    if batch_stats and not bn.training:  # no running stats to update
        running_mean = running_var = None
    weight = bn.weight if bn.affine else None
    bias = bn.bias if bn.affine else None
    return _BNGatedResidual.apply(
        x, weight, bias, identity,
        None if pooled_x is None else pooled_x.detach(), eca, batch_stats,
        running_mean, running_var, momentum, bn.eps, *eca.parameters())


def _resolve(pooled_x: PooledInput) -> Optional[Tensor]:
    return pooled_x() if callable(pooled_x) else pooled_x


def bn_gated_residual(x: Tensor, bn: nn.Module, eca: nn.Module,
                      identity: Tensor,
                      pooled_x: PooledInput = None) -> Tensor:
    """Compute ``identity + z * eca.gate(z)`` with ``z = bn(x)``, lean in time
    and memory.

    Args:
        x (Tensor): Input of the block's last normalisation, (N, C, H, W).
        bn (nn.Module): That normalisation layer.
        eca (nn.Module): The attention module (``gate`` and
            ``gate_from_pooled``).
        identity (Tensor): The residual branch, same shape as ``x``.
        pooled_x (Tensor | callable, optional): ``mean_hw(x)`` of shape
            (N, C) if the caller can get it cheaper than reading ``x``, or a
            function returning it (or None), called only on the paths that
            use it; it should carry no autograd graph (in training the
            gate's gradient still reaches everything through ``z``).

    Returns:
        Tensor: ``identity + z * gate`` (before the final ReLU), in ``z``'s
        dtype like mmdet's in-place ``out += identity`` (under autocast the
        identity may be wider: the add then runs in the wider type and is
        rounded once).
    """
    if not torch.is_grad_enabled():
        pooled_x = _resolve(pooled_x)
        affine = _eval_affine(bn) if pooled_x is not None else None
        z = bn(x)
        if affine is not None:  # mean(bn(x)) = scale * mean(x) + shift
            gate = eca.gate_from_pooled(
                (pooled_x * affine[0] + affine[1]).to(z.dtype)).to(z.dtype)
        else:
            gate = eca.gate(z)
        if identity.dtype == z.dtype:
            # in place, like ``out += identity``: no new activation buffer
            return torch.addcmul(identity, z, gate, out=z)
        return torch.addcmul(identity, z, gate).to(z.dtype)
    if x.numel() < FUSE_MIN_NUMEL:
        # small maps: the fused node's ~35 tiny ops cost more than the
        # memory traffic they save; plain autograd is faster here
        z = bn(x)
        return torch.addcmul(identity, z, eca.gate(z)).to(z.dtype)
    pooled_x = _resolve(pooled_x)
    if _fusable(x, bn, eca, identity):
        return _fused(x, bn, eca, identity, pooled_x)
    z, scale, shift = _affine_of_bn(bn, x)
    if scale is not None and pooled_x is not None:
        # mean_hw(z) = scale * mean_hw(x) + shift: no full read of z
        acc = torch.promote_types(z.dtype, torch.float32)
        pooled = _PooledAffine.apply(
            z, (pooled_x.detach().to(acc) * scale.to(acc) +
                shift.to(acc)).to(z.dtype))
        gate = eca.gate_from_pooled(pooled).to(z.dtype)
    else:
        gate = eca.gate(z)
    if scale is None:
        return torch.addcmul(identity, z, gate).to(z.dtype)
    return _GatedResidual.apply(z, gate, identity, x, scale, shift)
