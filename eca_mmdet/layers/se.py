"""Squeeze-and-Excitation, as the comparator of the ECA-Net paper.

Paper: "Squeeze-and-Excitation Networks", Jie Hu, Li Shen, Gang Sun,
CVPR 2018. https://arxiv.org/abs/1709.01507

SE-ResNet puts the module on the residual branch after the last BN, before
the addition -- mmdet's ``position='after_conv3'``::

    plugins=[dict(cfg=dict(type='SE', reduction=16), position='after_conv3')]
"""
import torch.nn as nn
from torch import Tensor

from mmdet.registry import MODELS

from .eca import spatial_mean


@MODELS.register_module()
class SE(nn.Module):
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
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1 \
                or in_channels % reduction:
            raise ValueError(
                f'SE reduction must be a positive int dividing in_channels='
                f'{in_channels}, got {reduction!r}')
        hidden = in_channels // reduction
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=bias)
        self.fc2 = nn.Conv2d(hidden, in_channels, 1, bias=bias)
        self.relu = nn.ReLU(inplace=True)

    def gate(self, x: Tensor) -> Tensor:
        """Return the (N, C, 1, 1) attention weights."""
        return self.gate_from_pooled(spatial_mean(x)).to(x.dtype)

    def gate_from_pooled(self, y: Tensor) -> Tensor:
        """Gate (N, C, 1, 1) from pooled features ``y`` of shape (N, C)."""
        return self.fc2(self.relu(self.fc1(y[:, :, None, None]))).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)
