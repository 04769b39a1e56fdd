"""The channel-attention variants of the ECA-Net paper's analysis (Table 2).

The paper asks which parts of SE matter by changing only how the pooled
descriptor ``y = GAP(x)`` (C values) is mapped to the gate. With C channels:

=========  ======================================  ===========
variant    gate                                    parameters
=========  ======================================  ===========
SE         sigma(W2 relu(W1 y)), reduction r       2 C^2 / r
SEVar1     sigma(y)                                0
SEVar2     sigma(w * y), one weight per channel    C
SEVar3     sigma(W y), one C x C layer             C^2
SEGC       sigma(W_G y), G-group C x C layer       C^2 / G
ECANS      sigma(sum_j w_i^j y_(i+j)), k per ch.   k C
ECA        sigma(conv1d_k(y)), shared weights      k
=========  ======================================  ===========

(``SE`` lives in :mod:`.se`, ``ECA`` and its ``num_convs`` stacking in
:mod:`.eca`.) Every module here is an mmdet ResNet plugin
(``position='after_conv3'``) and an ``attention_cfg`` of ``ECAResNet``,
maps the pooled ``y`` in :meth:`excite` like ``ECA``, and has no biases, so its
parameter count is exactly the table's formula.

Paper: Wang et al., "ECA-Net: Efficient Channel Attention for Deep
Convolutional Neural Networks", CVPR 2020, Sec. 4.2 and Table 2.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .channel_attention import ChannelAttention, check_positive_int
from .eca import check_kernel_size


@MODELS.register_module()
class SEVar1(ChannelAttention):
    """SE-Var1: ``sigma(y)``, no parameters.

    Args:
        in_channels (int): Channels C.
    """

    _abbr_ = 'se_var1'

    def excite(self, y: Tensor) -> Tensor:
        return y


@MODELS.register_module()
class SEVar2(ChannelAttention):
    """SE-Var2: ``sigma(w * y)``, one learned weight per channel (C params).

    Args:
        in_channels (int): Channels C.
    """

    _abbr_ = 'se_var2'

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels)
        self.weight = nn.Parameter(torch.ones(in_channels))

    def excite(self, y: Tensor) -> Tensor:
        return y * self.weight


@MODELS.register_module()
class SEVar3(ChannelAttention):
    """SE-Var3: ``sigma(W y)`` with one C x C layer, no reduction (C^2).

    Args:
        in_channels (int): Channels C.
    """

    _abbr_ = 'se_var3'

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels)
        self.fc = nn.Linear(in_channels, in_channels, bias=False)

    def excite(self, y: Tensor) -> Tensor:
        return self.fc(y)


@MODELS.register_module()
class SEGC(ChannelAttention):
    """SE-GC: ``sigma(W_G y)``, a C x C layer split into G groups (C^2/G).

    The paper's three settings are ``groups=16`` (SE-GC1),
    ``channels_per_group=16`` (SE-GC2, G = C/16) and
    ``channels_per_group=8`` (SE-GC3, G = C/8). Give exactly one of the two.

    Args:
        in_channels (int): Channels C.
        groups (int, optional): Number of groups G; must divide C.
        channels_per_group (int, optional): C/G instead of G.
    """

    _abbr_ = 'se_gc'

    def __init__(self, in_channels: int, groups: Optional[int] = None,
                 channels_per_group: Optional[int] = None) -> None:
        super().__init__(in_channels)
        if (groups is None) == (channels_per_group is None):
            raise ValueError('SEGC: give exactly one of groups (SE-GC1: 16) '
                             'and channels_per_group (SE-GC2: 16, SE-GC3: 8)')
        per = groups if groups is not None else channels_per_group
        if in_channels % check_positive_int(
                per, 'SEGC: groups/channels_per_group'):
            raise ValueError(f'SEGC: groups/channels_per_group must be a '
                             f'positive int dividing in_channels='
                             f'{in_channels}, got {per!r}')
        self.groups = per if groups is not None else in_channels // per
        self.conv = nn.Conv1d(in_channels, in_channels, 1,
                              groups=self.groups, bias=False)

    def excite(self, y: Tensor) -> Tensor:
        return self.conv(y[:, :, None])[:, :, 0]

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, groups={self.groups}'


@MODELS.register_module()
class ECANS(ChannelAttention):
    """ECA-NS: local cross-channel interaction with non-shared weights.

    Channel ``i`` gets ``sigma(sum_j w[i, j] * y[i - (k-1)/2 + j])`` over its
    k neighbours (zero padding at the ends): k C parameters, against ECA's k
    shared ones.

    Args:
        in_channels (int): Channels C.
        k_size (int): Odd neighbourhood size k. Defaults to 3.
    """

    _abbr_ = 'eca_ns'

    def __init__(self, in_channels: int, k_size: int = 3) -> None:
        super().__init__(in_channels)
        self.k_size = check_kernel_size(k_size)
        self.weight = nn.Parameter(torch.empty(in_channels, self.k_size))
        nn.init.uniform_(self.weight, -self.k_size ** -0.5,
                         self.k_size ** -0.5)  # as a Conv1d(1, 1, k)

    def excite(self, y: Tensor) -> Tensor:
        pad = (self.k_size - 1) // 2
        # (N, C + 2 pad) -> (N, C, k): the k neighbours of every channel
        windows = F.pad(y, (pad, pad)).unfold(1, self.k_size, 1)
        return (windows * self.weight).sum(-1)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, k_size={self.k_size}'
