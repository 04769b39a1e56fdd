"""Efficient Channel Attention (ECA).

Paper: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", Qilong Wang, Banggu Wu, Pengfei Zhu, Peihua Li, Wangmeng Zuo,
Qinghua Hu. CVPR 2020. https://arxiv.org/abs/1910.03151

ECA replaces SE's two fully-connected layers with a single 1-D convolution of
kernel size ``k`` that slides over the channel axis of the globally pooled
features:

    y = GAP(x)                         # (N, C)
    g = sigmoid(Conv1d_k(y))           # (N, C), k weights shared by all C
    out = x * g                        # broadcast over H, W

The layout (``eca.conv`` is an ``nn.Conv1d(1, 1, k, bias=False)``) matches the
authors' released ImageNet checkpoints, so their state-dict keys
``layerX.Y.eca.conv.weight`` load unchanged.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmdet.registry import MODELS


def adaptive_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """Kernel size from the paper's Eq. 9, ``|log2(C)/gamma + b/gamma|_odd``.

    Uses the integer form of the official code and timm:
    ``t = int(|log2(C) + b| / gamma)``, rounded up to the next odd number.

    Args:
        channels (int): Number of channels C.
        gamma (int): Slope of the mapping. Defaults to 2.
        b (int): Offset of the mapping. Defaults to 1.

    Returns:
        int: An odd kernel size (5, 5, 5, 7 for C = 256, 512, 1024, 2048).
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f'ECA: channels must be a positive int, got '
                         f'{channels!r}')
    t = int(abs(math.log2(channels) + b) / gamma)
    return t if t % 2 else t + 1


def spatial_mean(x: Tensor) -> Tensor:
    """``x.mean((2, 3))``; where autograd records it, as a sum times
    ``1 / (H * W)``.

    Same value (accumulated in at least float32, returned in ``x``'s
    dtype), and robust under AMP and channels_last unlike
    ``AdaptiveAvgPool2d``. The sum's backward is a broadcast view of the
    (N, C) gradient, where the backward of ``mean`` writes a full
    (N, C, H, W) tensor (a division of the expanded gradient): one
    full-size pass and allocation less per block in training.

    Args:
        x (Tensor): Features of shape (N, C, H, W).

    Returns:
        Tensor: Their mean over H and W, shape (N, C).
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.mean((2, 3))  # one op where there is no backward
    acc = torch.promote_types(x.dtype, torch.float32)
    return x.sum((2, 3), dtype=acc).div_(x.shape[2] * x.shape[3]).to(x.dtype)


def check_kernel_size(k_size) -> int:
    """Validate an ECA kernel size and return it as an int.

    Raises:
        ValueError: If ``k_size`` is not a positive odd integer.
    """
    if isinstance(k_size, bool) or not isinstance(k_size, int) \
            or k_size < 1 or k_size % 2 == 0:
        raise ValueError(
            f'ECA k_size must be a positive odd int (1, 3, 5, 7, ...) so the '
            f'1-D convolution keeps the channel count, got {k_size!r}. Use '
            f'k_size=None for the paper\'s adaptive rule.')
    return k_size


@MODELS.register_module()
class ECA(nn.Module):
    """Efficient Channel Attention module, usable as an mmdet ResNet plugin.

    Example (mmdet's own ResNet, ECA after the last BN of each Bottleneck)::

        plugins=[dict(cfg=dict(type='ECA', k_size=3), position='after_conv3')]

    Args:
        in_channels (int): Number of input channels C (given by mmdet when
            the module is built as a plugin).
        k_size (int, optional): Odd kernel size of the 1-D convolution.
            ``None`` chooses it adaptively from ``in_channels`` with the
            paper's Eq. 9. Defaults to 3.
        gamma (int): ``gamma`` of the adaptive rule. Defaults to 2.
        b (int): ``b`` of the adaptive rule. Defaults to 1.
        num_convs (int): 1-D convolutions stacked on the channel axis, as in
            the supplementary's Sec. B (one extra gave ~0.1%, more hurt).
            ``k * num_convs`` parameters; the first is ``conv`` (the key of
            the released checkpoints), the others ``extra_convs.i``.
            Defaults to 1.
    """

    _abbr_ = 'eca'

    def __init__(self,
                 in_channels: int,
                 k_size: Optional[int] = 3,
                 gamma: int = 2,
                 b: int = 1,
                 num_convs: int = 1) -> None:
        super().__init__()
        if k_size is None:
            k_size = adaptive_kernel_size(in_channels, gamma, b)
        self.in_channels = in_channels
        self.k_size = check_kernel_size(k_size)
        if isinstance(num_convs, bool) or not isinstance(num_convs, int) \
                or num_convs < 1:
            raise ValueError(f'ECA num_convs must be a positive int, got '
                             f'{num_convs!r}')
        self.num_convs = num_convs

        def conv1d():
            return nn.Conv1d(1, 1, kernel_size=self.k_size,
                             padding=(self.k_size - 1) // 2, bias=False)

        self.conv = conv1d()
        if num_convs > 1:
            self.extra_convs = nn.ModuleList(
                conv1d() for _ in range(num_convs - 1))

    def gate(self, x: Tensor) -> Tensor:
        """Attention weights ``sigmoid(conv1d(mean_hw(x)))``.

        Args:
            x (Tensor): Features of shape (N, C, H, W).

        Returns:
            Tensor: Gate of shape (N, C, 1, 1), in ``x``'s dtype.
        """
        return self.gate_from_pooled(spatial_mean(x)).to(x.dtype)

    def gate_from_pooled(self, y: Tensor) -> Tensor:
        """Gate from already pooled features ``y`` of shape (N, C).

        Returns:
            Tensor: Gate of shape (N, C, 1, 1).
        """
        n, c = y.shape
        out = y
        for conv in (self.conv, *getattr(self, 'extra_convs', ())):
            out = self._conv1d(out, conv.weight)
        return out.sigmoid().reshape(n, c, 1, 1)

    def gate_backward(self, y: Tensor, gate: Tensor, grad_gate: Tensor):
        """Closed-form backward of :meth:`gate_from_pooled` (one conv), for
        fused blocks that differentiate the gate inside their own backward
        (cheaper than rerunning autograd on these tiny tensors).

        Args:
            y (Tensor): The pooled input (N, C).
            gate (Tensor): ``gate_from_pooled(y)``, (N, C, 1, 1).
            grad_gate (Tensor): ``dL/dgate``, same shape as ``gate``.

        Returns:
            tuple | None: ``(dL/dy, (dL/dconv.weight, ))``, or None with
            ``num_convs > 1`` (then the caller uses autograd).
        """
        if self.num_convs != 1:
            return None
        n, c = y.shape
        k = self.k_size
        pad = (k - 1) // 2
        g = gate.view(n, c)
        # d sigmoid, then the conv's transpose: correlate with the flipped
        # kernel; the kernel's gradient correlates the input with du
        du = torch.ops.aten.sigmoid_backward(grad_gate.view(n, c), g)
        weight = self.conv.weight.view(k).to(du.dtype)
        grad_y = F.pad(du, (pad, pad)).unfold(-1, k, 1).matmul(weight.flip(0))
        windows = F.pad(y.to(du.dtype), (pad, pad)).unfold(-1, k, 1)
        grad_w = torch.mv(windows.reshape(n * c, k).t(), du.reshape(n * c))
        return grad_y, (grad_w.view_as(self.conv.weight), )

    def _conv1d(self, y: Tensor, weight: Tensor) -> Tensor:
        """The 1-D conv across channels (zero padding, no bias) on (N, C).

        Where autograd records it: a (N, C, k) sliding-window view of the
        padded input times the ``k`` weights, whose forward+backward is 2x
        faster than ``F.conv1d``'s on these tiny inputs. Otherwise (eval,
        and inside the fused training node's forward) one ``F.conv1d`` over
        a single sequence, about 2x faster than the window product: the N
        zero-padded rows end to end (``F.conv1d`` on a batch of N > 1 rows
        splits them across threads at a cost far above the work), each
        row's C outputs read back through a strided view. Identical up to
        rounding."""
        k = self.k_size
        pad = (k - 1) // 2
        weight = weight.to(y.dtype)
        if torch.is_grad_enabled() and (y.requires_grad
                                        or weight.requires_grad):
            return F.pad(y, (pad, pad)).unfold(-1, k, 1).matmul(
                weight.view(k))
        n, c = y.shape
        if n == 1:
            return F.conv1d(y.view(1, 1, c), weight, padding=pad).view(1, c)
        # output j sees input j..j+k-1: row r's outputs start at r*(c+2pad)
        out = F.conv1d(F.pad(y, (pad, pad)).view(1, 1, -1), weight)
        return out.as_strided((n, c), (c + 2 * pad, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` scaled channel-wise by its ECA gate."""
        return x * self.gate(x)

    def extra_repr(self) -> str:
        extra = f', num_convs={self.num_convs}' if self.num_convs > 1 else ''
        return f'in_channels={self.in_channels}, k_size={self.k_size}{extra}'
