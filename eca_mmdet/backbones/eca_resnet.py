"""ECA-ResNet backbones for MMDetection (ResNet-18/34/50/101/152, V1d form).

ECA sits after the last BN of every residual block, before the residual add,
as in the authors' ``models/eca_resnet.py``:

* BasicBlock: conv1-bn1-relu-conv2-bn2 -> ECA -> (+ identity) -> relu
* Bottleneck: conv1-bn1-relu-conv2-bn2-relu-conv3-bn3 -> ECA -> (+) -> relu

The blocks subclass mmdet's and keep every option of mmdet's ``ResNet``; the
ECA tail runs through :func:`bn_gated_residual` (one fused ``addcmul``, and no
extra activation kept for backward).
"""
from functools import partial
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import Tensor

from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.registry import MODELS

from ..checkpoint.zoo import find_preset
from ..layers.eca import ECA, adaptive_kernel_size, check_kernel_size
from ..layers.gated_residual import bn_gated_residual
from .pretrained_init import StrictPretrainedMixin

KernelSizes = Union[int, None, Sequence[Optional[int]]]

# Without autograd, conv3's input is pooled instead of its output only where
# the output has at least this many elements (24 MiB in float32, 3/4 of the
# 32 MiB last-level cache of the CPU of docs/benchmarks.md). Below it, pooling
# the output just written by batch norm (still in cache) is faster. Measured
# with ``tools/analysis/benchmark_tail.py --mode inference --batch 1``: at
# 800x1216 the input route saves ~1 ms per layer1 block (1 x 256 x 200 x 304)
# and 0-0.2 ms per layer2 block (1 x 512 x 100 x 152); at 512x512 it costs
# ~0.1 ms more per layer1 block (1 x 256 x 128 x 128), and more below.
EVAL_POOL_INPUT_MIN_NUMEL = 3 * 2**21


def pools_conv3_input(n: int, c_in: int, c_out: int, h: int, w: int,
                      grad_enabled: bool) -> bool:
    """Whether a Bottleneck's gate pools conv3's input (``c_in`` channels)
    rather than its output (``c_out``) for an ``n x c_in x h x w`` input:
    where that saves more reads than the ``c_in x c_out`` matrix-vector
    product costs and, without autograd, only on maps larger than the cache
    (``EVAL_POOL_INPUT_MIN_NUMEL``)."""
    if (c_out - c_in) * h * w <= c_in * c_out:
        return False
    return grad_enabled or n * c_out * h * w >= EVAL_POOL_INPUT_MIN_NUMEL


def build_attention(channels: int, k_size: int,
                    attention_cfg: Optional[dict] = None) -> nn.Module:
    """The block's channel attention: ECA, or ``attention_cfg`` if given
    (any registered plugin such as ``SE``, ``SEVar2``, ``ECANS``; ``ECA``
    takes the stage's kernel size unless the config sets one)."""
    if attention_cfg is None:
        return ECA(channels, k_size)
    cfg = dict(attention_cfg)
    if cfg.get('type') in ('ECA', ECA, 'ECANS'):
        cfg.setdefault('k_size', k_size)
    cfg['in_channels'] = channels
    return MODELS.build(cfg)


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
            return bn_gated_residual(
                self.conv2(out), self.norm2, self.eca, identity)

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


class ECABottleneck(Bottleneck):
    """mmdet's Bottleneck with ECA after ``norm3``.

    ``after_conv3`` plugins, if any, run after ECA.

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
        c3 = self.conv3
        self._conv3_is_linear_1x1 = (
            type(c3) is nn.Conv2d and c3.kernel_size == (1, 1)
            and c3.stride == (1, 1) and c3.padding == (0, 0)
            and c3.groups == 1 and c3.bias is None)

    def _pooled_conv3(self, x: Tensor) -> Optional[Tensor]:
        """``mean_hw(conv3(x))`` as ``W3 @ mean_hw(x)`` (exact for a linear
        1x1 conv): pools conv3's input, which has 4x fewer channels, instead
        of its output. Carries no graph: in training the gate's gradient
        flows through conv3's output (see ``bn_gated_residual``).

        Returns None (pool conv3's output instead) where that is cheaper:
        the route saves reading ``(C_out - C_in) * H * W`` values per image
        and costs a ``C_in x C_out`` matrix-vector product and a few small
        ops, so it pays only on large maps (e.g. not in layer4 at 224x224).
        Without autograd the output is pooled right after batch norm wrote
        it, while it is still in cache; the route then pays only where the
        output is larger than the cache (``EVAL_POOL_INPUT_MIN_NUMEL``)."""
        n, _, h, w = x.shape
        if not pools_conv3_input(n, self.conv3.in_channels,
                                 self.conv3.out_channels, h, w,
                                 torch.is_grad_enabled()):
            return None
        acc = torch.promote_types(x.dtype, torch.float32)
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            return F.linear(x.mean((2, 3), dtype=acc),
                            self.conv3.weight.detach().to(acc).flatten(1))

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.norm1(self.conv1(x)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv1_plugin_names)
            out = self.relu(self.norm2(self.conv2(out)))
            if self.with_plugins:
                out = self.forward_plugin(out, self.after_conv2_plugin_names)
            if self.with_plugins and self.after_conv3_plugin_names:
                out = self.eca(self.norm3(self.conv3(out)))
                out = self.forward_plugin(out, self.after_conv3_plugin_names)
                return out + identity
            # computed only where the tail uses it
            pooled = partial(self._pooled_conv3, out) \
                if self._conv3_is_linear_1x1 else None
            return bn_gated_residual(self.conv3(out), self.norm3, self.eca,
                                     identity, pooled)

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


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
        arch (str, optional): A released checkpoint preset that sets depth
            and per-stage kernel sizes, e.g. ``'eca_resnet50_k3557'``,
            ``'eca_resnet101_k3357'``. Overrides ``k_size``.
        attention_cfg (dict, optional): For ablations: build this attention
            module (e.g. ``dict(type='SE', reduction=16)``, ``SEVar1-3``,
            ``SEGC``, ``ECANS``, ``dict(type='ECA', num_convs=2)``) in every
            block instead of ECA, at the same place and through the same
            fused residual tail. Defaults to None (ECA).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint='eca://resnet101_k3357' or a path)`` loads ImageNet ECA
            weights strictly (official ``*.pth.tar``, timm or converted
            files); a file that does not fit raises instead of leaving weights
            at random init.
        **kwargs: Passed on to mmdet's ``ResNet``.

    Example:
        >>> backbone = ECAResNet(arch='eca_resnet50_k3557')
        >>> [m.eca.k_size for m in backbone.layer2][:1]
        [5]
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
            if depth is not None and depth != preset['depth']:
                raise ValueError(f"ECAResNet: depth={depth} contradicts "
                                 f"arch='{arch}' (depth {preset['depth']})")
            depth, k_size = preset['depth'], preset['k_size']
        if depth not in self.arch_settings:
            raise ValueError(
                f'ECAResNet: invalid depth {depth!r}; choose one of '
                f'{sorted(self.arch_settings)} or an arch preset')
        self.arch = arch
        self.attention_cfg = attention_cfg
        self.stage_k_sizes = _stage_kernel_sizes(k_size, num_stages)
        super().__init__(depth=depth, num_stages=num_stages, **kwargs)
        self.stage_k_sizes = tuple(getattr(layer[0].eca, 'k_size', None)
                                   for layer in self._layers())
        if self.zero_init_residual and kwargs.get('init_cfg') is None \
                and kwargs.get('pretrained') is None:
            # mmdet's ResNet only recognises its own block classes here
            norm = 'norm2' if self.block is ECABasicBlock else 'norm3'
            for layer in self._layers():
                for block in layer:
                    block.init_cfg = dict(
                        type='Constant', val=0, override=dict(name=norm))

    def train(self, mode: bool = True):
        """As mmdet's ResNet (frozen stages, ``norm_eval``), returning
        ``self`` like ``nn.Module.train``."""
        super().train(mode)
        return self

    def _layers(self):
        return [getattr(self, name) for name in self.res_layers]

    def make_res_layer(self, **kwargs):
        """Build stage ``len(self.res_layers)`` with its ECA kernel size."""
        stage = len(self.res_layers)
        k = self.stage_k_sizes[stage]
        if k is None:
            k = adaptive_kernel_size(kwargs['planes'] *
                                     kwargs['block'].expansion)
        return super().make_res_layer(eca_k_size=k,
                                      attention_cfg=self.attention_cfg,
                                      **kwargs)


@MODELS.register_module()
class ECAResNetV1d(ECAResNet):
    """ECA-ResNet in the ResNet-D form (deep 3x3 stem, avg-pool shortcut),
    the architecture of timm's ``ecaresnet50d`` / ``ecaresnet101d``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(deep_stem=True, avg_down=True, **kwargs)
