"""ECA-MobileNetV2 backbone, laid out like the authors' eca_mobilenetv2.

Module names follow the official model (torchvision's MobileNetV2 layout:
``features.0`` stem, ``features.1..17`` inverted residuals, ``features.18``
the 1x1 conv to 1280 channels), so the released ``eca_mobilenetv2_k13``
weights load after stripping ``module.`` and the classifier. ECA is the last
element of each inverted residual's ``conv`` Sequential, after the projection
BN; its kernel size is 1 for blocks with fewer than 96 output channels, else 3.
"""
from typing import Sequence

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.eca import ECA
from .pretrained_init import StrictPretrainedMixin


class ConvBNReLU(nn.Sequential):
    """Conv2d-BN-ReLU6 (keys ``.0`` conv, ``.1`` BN as in torchvision)."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride,
                      (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_planes), nn.ReLU6(inplace=True))


class ECAInvertedResidual(nn.Module):
    """Inverted residual block with ECA after the projection BN.

    Args:
        inp (int): Input channels.
        oup (int): Output channels.
        stride (int): 1 or 2.
        expand_ratio (int): Hidden expansion.
        k_size (int): ECA kernel size.
        with_cp (bool): Gradient checkpointing.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int,
                 k_size: int, with_cp: bool = False) -> None:
        super().__init__()
        assert stride in (1, 2)
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        self.with_cp = with_cp
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
            ECA(oup, k_size),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            out = self.conv(x)
            return x + out if self.use_res_connect else out

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


@MODELS.register_module()
class ECAMobileNetV2(StrictPretrainedMixin, BaseModule):
    """ECA-MobileNetV2 backbone ("k13": k=1 below 96 channels, else 3).

    Stages follow mmdet's ``MobileNetV2``: index 0..6 are the seven
    inverted-residual stages (16, 24, 32, 64, 96, 160, 320 channels) and 7 is
    the final 1x1 conv (1280 channels).

    Args:
        widen_factor (float): Width multiplier. Defaults to 1.0.
        out_indices (Sequence[int]): Stages to output; (1, 2, 4, 7) gives
            strides 4, 8, 16, 32 for an FPN. Defaults to (1, 2, 4, 7).
        frozen_stages (int): Stages to freeze (-1: none, 0: the stem).
        norm_eval (bool): Keep BN layers in eval mode while training.
        with_cp (bool): Gradient checkpointing in the blocks.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint='eca://mobilenetv2_k13')``.
    """

    # t (expansion), c (channels), n (blocks), s (stride)
    arch_settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2],
                     [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                     [6, 320, 1, 1]]

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 4, 7),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d', mode='fan_out'),
                dict(type='Constant', val=1, layer=['_BatchNorm'])
            ]
        super().__init__(init_cfg)
        out_indices = tuple(out_indices)
        if not out_indices or not set(out_indices) <= set(range(8)):
            raise ValueError(f'ECAMobileNetV2 out_indices must be a subset '
                             f'of 0..7, got {out_indices}')
        if frozen_stages not in range(-1, 8):
            raise ValueError(f'ECAMobileNetV2 frozen_stages must be in '
                             f'-1..7, got {frozen_stages}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        in_ch = int(32 * widen_factor)
        last_ch = int(1280 * max(1.0, widen_factor))
        features = [ConvBNReLU(3, in_ch, stride=2)]
        self.stage_ends = []  # index in features of each stage's last module
        for t, c, n, s in self.arch_settings:
            out_ch = int(c * widen_factor)
            k = 1 if c < 96 else 3
            for i in range(n):
                features.append(
                    ECAInvertedResidual(in_ch, out_ch, s if i == 0 else 1,
                                        t, k, with_cp))
                in_ch = out_ch
            self.stage_ends.append(len(features) - 1)
        features.append(ConvBNReLU(in_ch, last_ch, kernel_size=1))
        self.stage_ends.append(len(features) - 1)
        self.features = nn.Sequential(*features)
        self._freeze_stages()

    def forward(self, x: Tensor) -> tuple:
        """Return the feature maps of ``out_indices``."""
        outs = []
        start = 0
        for stage, end in enumerate(self.stage_ends):
            for i in range(start, end + 1):
                x = self.features[i](x)
            start = end + 1
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        last = self.stage_ends[self.frozen_stages - 1] \
            if self.frozen_stages > 0 else 0
        for i in range(0, last + 1):
            m = self.features[i]
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        """Keep frozen stages and (with ``norm_eval``) BN in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
