"""ECA-ResNet backbones for MMDetection (ResNet-18/34/50/101/152, V1d form).

ECA sits after the last BN of every residual block, before the residual add,
as in the authors' ``models/eca_resnet.py``:

* BasicBlock: conv1-bn1-relu-conv2-bn2 -> ECA -> (+ identity) -> relu
* Bottleneck: conv1-bn1-relu-conv2-bn2-relu-conv3-bn3 -> ECA -> (+) -> relu

The blocks subclass mmdet's and keep every option of mmdet's ``ResNet``. Their
tail is :func:`~eca_mmdet.layers.gated_residual` (the same numbers as
``identity + eca(bn(x))``, without keeping ``bn(x)`` for backward).
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.registry import MODELS
from torch import Tensor

from ..checkpoint.zoo import find_preset
from ..layers import (
    ECA,
    ChannelAttention,
    adaptive_kernel_size,
    check_kernel_size,
    gated_residual,
)
from .pretrained_init import StrictPretrainedMixin

KernelSizes = Union[int, None, Sequence[Optional[int]]]


def build_attention(channels: int, k_size: int,
                    attention_cfg: Optional[dict] = None) -> nn.Module:
    """The block's channel attention: ECA, or ``attention_cfg`` if given
    (``SE``, ``SEVar1-3``, ``SEGC``, ``ECANS``, ``ECA`` with options; ``ECA``
    and ``ECANS`` take the stage's kernel size unless the config sets one)."""
    if attention_cfg is None:
        return ECA(channels, k_size)
    cfg = dict(attention_cfg)
    if cfg.get('type') in ('ECA', ECA, 'ECANS'):
        cfg.setdefault('k_size', k_size)
    cfg['in_channels'] = channels
    module = MODELS.build(cfg)
    if not isinstance(module, ChannelAttention):
        raise TypeError(
            f'ECAResNet attention_cfg must build a channel attention '
            f'(ECA, SE, SEVar1-3, SEGC, ECANS), got {type(module).__name__}; '
            f'put other modules in plugins instead')
    return module


class ECABasicBlock(BasicBlock):
    """mmdet's BasicBlock with ECA after ``norm2``.

    Args:
        eca_k_size (int): Kernel size of this block's ECA.
        attention_cfg (dict, optional): Another attention module instead of
            ECA (see :func:`build_attention`).
        Others: as mmdet's ``BasicBlock`` (which supports neither ``dcn``
            nor ``plugins``).
    """

    def __init__(self, *args, eca_k_size: int = 3, attention_cfg=None,
                 dcn=None, plugins=None, **kwargs) -> None:
        if dcn is not None or plugins:
            raise ValueError(
                'ECAResNet depth 18/34 (BasicBlock) supports neither dcn nor '
                'plugins, as in mmdet\'s ResNet; use depth >= 50 for them.')
        super().__init__(*args, **kwargs)
        self.eca = build_attention(self.conv2.out_channels, eca_k_size,
                                   attention_cfg)

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.norm1(self.conv1(x)))
            return gated_residual(self.conv2(out), self.norm2, self.eca,
                                  identity)

        return _checkpointed(self, _inner_forward, x)


class ECABottleneck(Bottleneck):
    """mmdet's Bottleneck with ECA after ``norm3``, right before the residual
    add; ``after_conv3`` plugins, if any, run between ``norm3`` and ECA.

    Args:
        eca_k_size (int): Kernel size of this block's ECA.
        attention_cfg (dict, optional): Another attention module instead of
            ECA (see :func:`build_attention`).
        Others: as mmdet's ``Bottleneck``.
    """

    def __init__(self, *args, eca_k_size: int = 3, attention_cfg=None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eca = build_attention(self.planes * self.expansion, eca_k_size,
                                   attention_cfg)

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.norm1(self.conv1(x)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv1_plugin_names)
            out = self.relu(self.norm2(self.conv2(out)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv2_plugin_names)
            out, norm = self.conv3(out), self.norm3
            if self.with_plugins and self.after_conv3_plugin_names:
                out = self.forward_plugin(norm(out),
                                          self.after_conv3_plugin_names)
                norm = None  # already applied
            return gated_residual(out, norm, self.eca, identity)

        return _checkpointed(self, _inner_forward, x)


def _checkpointed(block, inner_forward, x: Tensor) -> Tensor:
    """``relu(inner_forward(x))``, with activation checkpointing if the
    block has ``with_cp`` (as mmdet's blocks do)."""
    if block.with_cp and x.requires_grad:
        out = cp.checkpoint(inner_forward, x, use_reentrant=False)
    else:
        out = inner_forward(x)
    return block.relu(out)


def _stage_kernel_sizes(k_size: KernelSizes, num_stages: int) -> Tuple:
    """Normalise ``k_size`` to one entry (odd int or None) per stage."""
    if k_size is None or isinstance(k_size, int):
        if k_size is not None:
            check_kernel_size(k_size)
        return (k_size, ) * num_stages
    if not isinstance(k_size, (list, tuple)) or \
            len(k_size) not in (num_stages, 4):
        raise ValueError(
            f'ECAResNet k_size must be an odd int, None (adaptive), or one '
            f'entry per stage (layer1..layer4, {num_stages} stages built), '
            f'got {k_size!r}')
    for k in k_size:
        if k is not None:
            check_kernel_size(k)
    return tuple(k_size[:num_stages])


@MODELS.register_module()
class ECAResNet(StrictPretrainedMixin, ResNet):
    """ECA-ResNet backbone (Wang et al., CVPR 2020).

    Every argument of mmdet's ``ResNet`` works unchanged (``num_stages``,
    ``out_indices``, ``frozen_stages``, ``norm_cfg``, ``norm_eval``,
    ``style``, ``with_cp``, ``dcn``/``stage_with_dcn``, ``plugins``,
    ``deep_stem``/``avg_down``, ``init_cfg``).

    Args:
        depth (int, optional): 18, 34, 50, 101 or 152. May be omitted when
            ``arch`` is given.
        k_size (int | None | Sequence): ECA kernel size: one odd int for all
            stages, one entry per stage (layer1..layer4), or ``None`` for the
            paper's adaptive rule (5, 5, 5, 7 for a Bottleneck ResNet).
            Defaults to 3.
        arch (str, optional): A released checkpoint preset, e.g.
            ``'eca_resnet101_k3357'``, that sets ``depth`` and ``k_size``:
            give no ``k_size`` (nor another ``depth``) with it.
        attention_cfg (dict, optional): For ablations: build this attention
            module (e.g. ``dict(type='SE', reduction=16)``, ``SEVar1-3``,
            ``SEGC``, ``ECANS``, ``dict(type='ECA', num_convs=2)``) in every
            block instead of ECA, at the same place. Defaults to None (ECA).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint='eca://resnet101_k3357' or a path)`` loads ImageNet ECA
            weights strictly (official ``*.pth.tar``, timm or converted
            files); a file that does not fit raises instead of leaving weights
            at random init.
        **kwargs: Passed on to mmdet's ``ResNet``.

    Example:
        >>> backbone = ECAResNet(arch='eca_resnet50_k3557')
        >>> backbone.stage_k_sizes
        (3, 5, 5, 7)
    """

    arch_settings = {
        18: (ECABasicBlock, (2, 2, 2, 2)),
        34: (ECABasicBlock, (3, 4, 6, 3)),
        50: (ECABottleneck, (3, 4, 6, 3)),
        101: (ECABottleneck, (3, 4, 23, 3)),
        152: (ECABottleneck, (3, 8, 36, 3))
    }

    def __init__(self,
                 depth: Optional[int] = None,
                 k_size: KernelSizes = 3,
                 arch: Optional[str] = None,
                 num_stages: int = 4,
                 attention_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if arch is not None:
            preset = find_preset(arch)
            if depth not in (None, preset['depth']) or k_size != 3:
                raise ValueError(
                    f"ECAResNet: arch='{arch}' sets depth {preset['depth']} "
                    f"and k_size {tuple(preset['k_size'])}, those of its "
                    f"released checkpoint; give arch without k_size (and "
                    f"with no other depth), or depth and k_size for your "
                    f"own kernel sizes")
            depth, k_size = preset['depth'], preset['k_size']
        if depth not in self.arch_settings:
            raise ValueError(
                f'ECAResNet: invalid depth {depth!r}; choose one of '
                f'{sorted(self.arch_settings)} or an arch preset')
        self.arch = arch
        self.attention_cfg = attention_cfg
        # stage i outputs base_channels * 2**i * expansion channels
        width = kwargs.get('base_channels', 64) * \
            self.arch_settings[depth][0].expansion
        self.stage_k_sizes = tuple(
            adaptive_kernel_size(width * 2**i) if k is None else k
            for i, k in enumerate(_stage_kernel_sizes(k_size, num_stages)))
        super().__init__(depth=depth, num_stages=num_stages, **kwargs)
        if self.zero_init_residual and kwargs.get('init_cfg') is None \
                and kwargs.get('pretrained') is None:
            # mmdet's ResNet only recognises its own block classes here
            norm = 'norm2' if self.block is ECABasicBlock else 'norm3'
            for name in self.res_layers:
                for block in getattr(self, name):
                    block.init_cfg = dict(
                        type='Constant', val=0, override=dict(name=norm))

    def train(self, mode: bool = True):
        """mmdet's ``ResNet.train`` (frozen stages, ``norm_eval``) returns
        None; return ``self`` as ``nn.Module.train`` does, so that
        ``backbone.eval()`` chains."""
        super().train(mode)
        return self

    def make_res_layer(self, **kwargs):
        """Build stage ``len(self.res_layers)`` with its ECA kernel size."""
        return super().make_res_layer(
            eca_k_size=self.stage_k_sizes[len(self.res_layers)],
            attention_cfg=self.attention_cfg, **kwargs)


@MODELS.register_module()
class ECAResNetV1d(ECAResNet):
    """ECA-ResNet in the ResNet-D form (deep 3x3 stem, avg-pool shortcut),
    the architecture of timm's ``ecaresnet50d`` / ``ecaresnet101d``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(deep_stem=True, avg_down=True, **kwargs)
