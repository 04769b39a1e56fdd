"""Squeeze-and-Excitation, as the comparator of the ECA-Net paper.

Paper: "Squeeze-and-Excitation Networks", Jie Hu, Li Shen, Gang Sun,
CVPR 2018. https://arxiv.org/abs/1709.01507

SE-ResNet puts the module on the residual branch after the last BN, before
the addition -- mmdet's ``position='after_conv3'``::

    plugins=[dict(cfg=dict(type='SE', reduction=16), position='after_conv3')]
"""
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .channel_attention import ChannelAttention, check_positive_int


@MODELS.register_module()
class SE(ChannelAttention):
    """SE block: ``x * sigmoid(W2 relu(W1 GAP(x)))``.

    Args:
        in_channels (int): Channels C (given by mmdet for plugins).
        reduction (int): Reduction ratio r of the bottleneck. Defaults to 16.
        bias (bool): Biases in the two FC layers, as in SENet. Parameters:
            ``2 C^2 / r`` (+ ``C / r + C`` with biases). Defaults to True.
    """

    _abbr_ = 'se'

    def __init__(self, in_channels: int, reduction: int = 16,
                 bias: bool = True) -> None:
        super().__init__(in_channels)
        if in_channels % check_positive_int(reduction, 'SE reduction'):
            raise ValueError(
                f'SE reduction must be a positive int dividing in_channels='
                f'{in_channels}, got {reduction!r}')
        hidden = in_channels // reduction
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=bias)
        self.fc2 = nn.Conv2d(hidden, in_channels, 1, bias=bias)
        self.relu = nn.ReLU(inplace=True)

    def excite(self, y: Tensor) -> Tensor:
        """``W2 relu(W1 y)`` on pooled features ``y`` (N, C)."""
        h = self.relu(self.fc1(y[:, :, None, None]))
        return self.fc2(h)[:, :, 0, 0]
