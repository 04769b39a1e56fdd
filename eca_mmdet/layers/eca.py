"""Efficient Channel Attention (ECA).

Paper: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", Qilong Wang, Banggu Wu, Pengfei Zhu, Peihua Li, Wangmeng Zuo,
Qinghua Hu. CVPR 2020. https://arxiv.org/abs/1910.03151

ECA replaces SE's two fully-connected layers by one 1-D convolution of odd
kernel size ``k`` that slides over the channel axis of the pooled features::

    y = mean_hw(x)                 # (N, C)
    out = x * sigmoid(conv1d_k(y))  # k weights shared by all C channels

``eca.conv`` is an ``nn.Conv1d(1, 1, k, bias=False)``, the layout of the
authors' released ImageNet checkpoints (keys ``layerX.Y.eca.conv.weight``).
"""
import math
from typing import Optional

import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .channel_attention import ChannelAttention, check_positive_int


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
    check_positive_int(channels, 'ECA: channels')
    t = int(abs(math.log2(channels) + b) / gamma)
    return t if t % 2 else t + 1


def check_kernel_size(k_size) -> int:
    """Validate an ECA kernel size and return it.

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
class ECA(ChannelAttention):
    """Efficient Channel Attention, also usable as an mmdet ResNet plugin.

    Example (mmdet's own ResNet, ECA after the last BN of each Bottleneck)::

        plugins=[dict(cfg=dict(type='ECA', k_size=3), position='after_conv3')]

    Args:
        in_channels (int): Number of channels C (given by mmdet when the
            module is built as a plugin).
        k_size (int, optional): Odd kernel size of the 1-D convolution.
            ``None`` chooses it from ``in_channels`` with the paper's Eq. 9.
            Defaults to 3.
        gamma (int): ``gamma`` of the adaptive rule. Defaults to 2.
        b (int): ``b`` of the adaptive rule. Defaults to 1.
        num_convs (int): 1-D convolutions stacked on the channel axis
            (supplementary Sec. B: a second one gave ~0.1%, more hurt). The
            first is ``conv``, the key of the released checkpoints, the
            others ``extra_convs.i``. Defaults to 1.
    """

    _abbr_ = 'eca'

    def __init__(self,
                 in_channels: int,
                 k_size: Optional[int] = 3,
                 gamma: int = 2,
                 b: int = 1,
                 num_convs: int = 1) -> None:
        super().__init__(in_channels)
        if k_size is None:
            k_size = adaptive_kernel_size(in_channels, gamma, b)
        self.k_size = check_kernel_size(k_size)
        self.num_convs = check_positive_int(num_convs, 'ECA num_convs')
        self.conv = self._conv1d()
        if num_convs > 1:
            self.extra_convs = nn.ModuleList(
                self._conv1d() for _ in range(num_convs - 1))

    def _conv1d(self) -> nn.Conv1d:
        return nn.Conv1d(1, 1, self.k_size, padding=(self.k_size - 1) // 2,
                         bias=False)

    def excite(self, y: Tensor) -> Tensor:
        """1-D convolution(s) across the channels of ``y`` (N, C)."""
        y = self.conv(y[:, None, :])
        for conv in getattr(self, 'extra_convs', ()):
            y = conv(y)
        return y[:, 0, :]

    def extra_repr(self) -> str:
        extra = f', num_convs={self.num_convs}' if self.num_convs > 1 else ''
        return f'in_channels={self.in_channels}, k_size={self.k_size}{extra}'
