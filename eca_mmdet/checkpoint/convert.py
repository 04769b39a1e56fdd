"""Key conversion from released ECA checkpoint layouts to our backbones.

Supported sources (detected from the keys):

* ``official`` -- BangguWu/ECANet ``*.pth.tar``: ``{'state_dict': ...}`` with
  DataParallel ``module.`` prefixes, torchvision ResNet / MobileNetV2 names,
  ``layerN.i.eca.conv.weight`` and a classifier (``fc.*`` / ``classifier.*``).
  Our :class:`ECAResNet` and :class:`ECAMobileNetV2` use the same names, so
  only the prefix and the classifier are dropped.
* ``timm`` -- ``ecaresnet50d`` / ``ecaresnet101d``: deep stem
  ``conv1.0/1/3/4/6`` + ``bn1``, ECA under ``se``; mapped onto mmdet's V1d
  names (``stem.0..7``), i.e. :class:`ECAResNetV1d`.
* ``mmdet`` -- a detector checkpoint: the ``backbone.`` sub-dict is used.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

from torch import Tensor

from .errors import CheckpointError

StateDict = Dict[str, Tensor]

_NESTED_KEYS = ('state_dict', 'model', 'state_dict_ema', 'model_ema')
_CLASSIFIER = re.compile(r'^(fc|classifier|head|last_linear)\.')
# timm deep stem  conv1.{0,1,3,4,6} + bn1  ->  mmdet ResNetV1d stem.{0..7}
_TIMM_STEM = {'conv1.0.': 'stem.0.', 'conv1.1.': 'stem.1.',
              'conv1.3.': 'stem.3.', 'conv1.4.': 'stem.4.',
              'conv1.6.': 'stem.6.', 'bn1.': 'stem.7.'}


def extract_state_dict(checkpoint) -> StateDict:
    """Return the tensor dict inside a loaded checkpoint.

    Accepts a bare state_dict or one nested under ``state_dict``/``model``
    (the official files also carry ``epoch``, ``arch``, ``best_prec1`` and
    ``optimizer``, which are ignored).
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'checkpoint holds a {type(checkpoint).__name__}, expected a '
            f'dict of tensors or a dict with a "state_dict" entry')
    for key in _NESTED_KEYS:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state_dict = OrderedDict(
        (k, v) for k, v in checkpoint.items() if isinstance(v, Tensor))
    if not state_dict:
        raise CheckpointError(
            f'checkpoint has no tensors (top-level keys: '
            f'{sorted(map(str, checkpoint))[:8]}); expected a model '
            f'state_dict')
    return state_dict


def detect_format(state_dict: StateDict) -> str:
    """``'timm'``, ``'mmdet'`` or ``'official'`` from the key names."""
    keys = list(state_dict)
    if any(k.startswith('backbone.') for k in keys):
        return 'mmdet'
    stripped = [k[len('module.'):] if k.startswith('module.') else k
                for k in keys]
    if any(k.startswith('conv1.0.') for k in stripped) or any(
            '.se.conv.' in k for k in stripped):
        return 'timm'
    return 'official'


def strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    """Drop ``prefix`` from keys that have it (others are kept)."""
    n = len(prefix)
    return OrderedDict((k[n:] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())


def convert_official(state_dict: StateDict) -> StateDict:
    """Official ECANet (or torchvision-named) keys -> backbone keys."""
    state_dict = strip_prefix(state_dict, 'module.')
    return OrderedDict((k, v) for k, v in state_dict.items()
                       if not _CLASSIFIER.match(k))


def convert_timm(state_dict: StateDict) -> StateDict:
    """timm ``ecaresnet*d`` keys -> :class:`ECAResNetV1d` keys."""
    out = OrderedDict()
    for key, value in strip_prefix(state_dict, 'module.').items():
        if _CLASSIFIER.match(key):
            continue
        for src, dst in _TIMM_STEM.items():
            if key.startswith(src):
                key = dst + key[len(src):]
                break
        key = key.replace('.se.conv.', '.eca.conv.')
        out[key] = value
    return out


def sub_state_dict(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix`` (e.g. ``'backbone.'``), without it."""
    n = len(prefix)
    return OrderedDict((k[n:], v) for k, v in state_dict.items()
                       if k.startswith(prefix))


def convert_mmdet(state_dict: StateDict) -> StateDict:
    """Detector checkpoint -> its backbone's state_dict."""
    return sub_state_dict(state_dict, 'backbone.')


_CONVERTERS = dict(official=convert_official, timm=convert_timm,
                   mmdet=convert_mmdet)


def to_backbone_state_dict(checkpoint, fmt: str = 'auto'
                           ) -> Tuple[StateDict, str]:
    """Convert a loaded checkpoint of any supported layout.

    Args:
        checkpoint: What :func:`torch.load` returned.
        fmt (str): ``'auto'``, ``'official'``, ``'timm'`` or ``'mmdet'``.

    Returns:
        tuple: The backbone state_dict and the format that was used.
    """
    state_dict = extract_state_dict(checkpoint)
    if fmt == 'auto':
        fmt = detect_format(state_dict)
    if fmt not in _CONVERTERS:
        raise ValueError(f'unknown checkpoint format {fmt!r}; choose from '
                         f'auto, {", ".join(_CONVERTERS)}')
    return _CONVERTERS[fmt](state_dict), fmt


def eca_kernel_sizes(state_dict: StateDict) -> Dict[str, Tuple[int, ...]]:
    """Kernel sizes of all ECA weights, grouped by stage (``layer1``...,
    or ``features`` for MobileNetV2), in block order."""
    stages: Dict[str, list] = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith('eca.conv.weight'):
            stages.setdefault(key.split('.')[0], []).append(
                int(value.shape[-1]))
    return OrderedDict((k, tuple(v)) for k, v in stages.items())


def format_kernels(kernels: Dict[str, Tuple[int, ...]]) -> str:
    """``'layer1=3, layer2=5, ...'`` (``a/b/...`` where a stage mixes)."""
    parts = []
    for stage, ks in kernels.items():
        uniq = sorted(set(ks))
        parts.append(f'{stage}={uniq[0]}' if len(uniq) == 1 else
                     f'{stage}={"/".join(map(str, ks))}')
    return ', '.join(parts) if parts else 'none'


def blocks_per_stage(keys) -> Dict[str, int]:
    """Number of residual blocks per ``layerN`` among state_dict keys."""
    blocks: Dict[str, set] = OrderedDict()
    for key in keys:
        parts = key.split('.')
        if parts[0].startswith('layer') and len(parts) > 2:
            blocks.setdefault(parts[0], set()).add(parts[1])
    return OrderedDict((k, len(v)) for k, v in blocks.items())


def resnet_depth(state_dict: StateDict) -> Optional[int]:
    """Depth of the ResNet with these ``layerN.i.*`` keys, from mmdet's
    ``ResNet.arch_settings`` (blocks per stage, Bottleneck or not); None if
    no depth fits."""
    from mmdet.models.backbones import ResNet
    blocks = tuple(blocks_per_stage(state_dict).values())
    bottleneck = any(k.startswith('layer1.0.conv3.') for k in state_dict)
    for depth, (block, stages) in ResNet.arch_settings.items():
        if stages == blocks and (block.expansion == 4) == bottleneck:
            return depth
    return None


def stage_kernel_sizes(state_dict: StateDict) -> Optional[Tuple[int, ...]]:
    """One ECA kernel size per ``layerN`` stage, or None if a stage mixes
    sizes or there are no ECA weights."""
    kernels = eca_kernel_sizes(state_dict)
    if not kernels or any(len(set(ks)) != 1 for ks in kernels.values()):
        return None
    return tuple(ks[0] for ks in kernels.values())


def backbone_config(state_dict: StateDict) -> dict:
    """The backbone config (``ECAResNet``, ``ECAResNetV1d`` or
    ``ECAMobileNetV2``) that a backbone state_dict belongs to.

    Raises:
        CheckpointError: No ECA backbone has these keys.
    """
    if 'features.0.0.weight' in state_dict:
        return dict(type='ECAMobileNetV2')
    depth = resnet_depth(state_dict)
    if depth is None:
        raise CheckpointError(
            f'unrecognised ResNet layout: blocks per stage '
            f'{dict(blocks_per_stage(state_dict))}')
    k_size = stage_kernel_sizes(state_dict)
    if k_size is None:
        raise CheckpointError(f'ECA kernel sizes missing or varying inside '
                              f'a stage: {dict(eca_kernel_sizes(state_dict))}')
    v1d = 'stem.0.weight' in state_dict
    return dict(type='ECAResNetV1d' if v1d else 'ECAResNet', depth=depth,
                k_size=k_size)
