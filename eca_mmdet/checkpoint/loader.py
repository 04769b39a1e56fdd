"""Load ImageNet ECA weights into a backbone, strictly and with clear errors.

mmengine's ``Pretrained`` initialiser loads with ``strict=False`` and only
*warns* about missing keys or shape mismatches, so a checkpoint with other ECA
kernel sizes, or a plain ResNet file, would leave attention weights at random
init without anyone noticing. Our backbones route ``init_cfg=dict(
type='Pretrained', checkpoint=...)`` through :func:`load_pretrained`, which
refuses such files with an error naming what was expected and what was found.
"""
import os.path as osp
from collections import OrderedDict
from typing import Optional

import torch.nn as nn

from ..utils import log_once
from .convert import (
    StateDict,
    blocks_per_stage,
    eca_kernel_sizes,
    extract_state_dict,
    format_kernels,
    stage_kernel_sizes,
    sub_state_dict,
    to_backbone_state_dict,
)
from .errors import CheckpointError
from .safe_load import load_checkpoint_file
from .sources import local_checkpoint
from .zoo import SCHEME, presets_for


def resolve_checkpoint(spec: str) -> str:
    """A checkpoint spec (path, ``eca://``, ``hf-hub:``, ``timm://`` or
    URL; see :func:`~.sources.local_checkpoint`) as an existing local file.

    Raises:
        CheckpointError: No such file, or it cannot be fetched.
    """
    path = osp.abspath(osp.expanduser(local_checkpoint(spec)))
    if not osp.isfile(path):
        raise CheckpointError(
            f'pretrained checkpoint not found: {path}. Fix the path in '
            f'init_cfg=dict(type="Pretrained", checkpoint=...), or use an '
            f'{SCHEME} name (docs/weights.md, "The authors\' ImageNet '
            'files").')
    return path


def _kernel_hint(model: nn.Module, state_dict: StateDict) -> str:
    per_stage = stage_kernel_sizes(state_dict)
    if per_stage is None:
        return ''
    depth = getattr(model, 'depth', None)
    presets = presets_for(depth, per_stage) if depth else ()
    hint = f' Build the backbone with k_size={per_stage}'
    if presets:
        hint += f" or arch='{presets[0]}'"
    return hint + '.'


def check_compatible(model: nn.Module, state_dict: StateDict,
                     source: str) -> StateDict:
    """Check ``state_dict`` fits ``model`` exactly; return the part to load.

    Keys of stages the model does not build (``num_stages < 4``) and
    ``num_batches_tracked`` counters are tolerated; anything else that does
    not match raises.

    Raises:
        CheckpointError: Wrong depth, wrong or missing ECA kernels, missing
            weights or shape mismatches, each with a message saying how to
            fix it.
    """
    target = model.state_dict()
    name = type(model).__name__

    # 1. depth: blocks per stage must agree
    want_blocks = blocks_per_stage(target)
    have_blocks = blocks_per_stage(state_dict)
    for stage, n in want_blocks.items():
        if have_blocks.get(stage, 0) != n:
            raise CheckpointError(
                f'{source} does not fit {name}(depth='
                f'{getattr(model, "depth", "?")}): blocks per stage in the '
                f'checkpoint {dict(have_blocks)}, in the model '
                f'{dict(want_blocks)}. Use the checkpoint of this depth or '
                f'set depth to match the checkpoint.')

    # 2. ECA weights: present, and with the model's kernel sizes
    want_k = eca_kernel_sizes(target)
    have_k = eca_kernel_sizes(
        OrderedDict((k, v) for k, v in state_dict.items() if k in target))
    if want_k and not have_k:
        raise CheckpointError(
            f'{source} has no ECA weights (no "*.eca.conv.weight" keys, e.g. '
            f'{next(k for k in target if k.endswith("eca.conv.weight"))}): '
            f'it looks like a plain (non-ECA) checkpoint. Loading it would '
            f'leave every ECA kernel at random init. Use an ECA checkpoint, '
            f'or mmdet\'s ResNet for plain weights.')
    if want_k != have_k:
        missing_eca = [k for k in target if k.endswith('eca.conv.weight')
                       and k not in state_dict]
        if missing_eca:
            raise CheckpointError(
                f'{source} lacks {len(missing_eca)} of the model\'s ECA '
                f'weights (e.g. {", ".join(missing_eca[:3])}); refusing to '
                f'leave them at random init. The file is incomplete or from '
                f'another architecture.')
        raise CheckpointError(
            f'ECA kernel sizes differ: the model was built with '
            f'{format_kernels(want_k)}, the checkpoint {source} has '
            f'{format_kernels(have_k)}.' + _kernel_hint(model, state_dict))

    # 3. everything else
    missing = [k for k in target if k not in state_dict
               and not k.endswith('num_batches_tracked')]
    if missing:
        raise CheckpointError(
            f'{source} lacks {len(missing)} weights of {name}, e.g. '
            f'{", ".join(missing[:5])}. It is not a checkpoint of this '
            f'backbone (or its keys need conversion: see '
            f'tools/convert_checkpoint.py).')
    mismatched = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
                  f'{tuple(v.shape)}' for k, v in target.items()
                  if k in state_dict and state_dict[k].shape != v.shape]
    if mismatched:
        raise CheckpointError(
            f'{source} has {len(mismatched)} weights whose shapes differ '
            f'from {name}: ' + '; '.join(mismatched[:5]))
    return OrderedDict((k, v) for k, v in state_dict.items() if k in target)


def load_pretrained(model: nn.Module, checkpoint: str, fmt: str = 'auto',
                    prefix: Optional[str] = None) -> str:
    """Load an ImageNet ECA checkpoint into a backbone, strictly.

    Args:
        model (nn.Module): An ECA backbone.
        checkpoint (str): Local path or ``eca://`` name.
        fmt (str): Key layout, see :func:`to_backbone_state_dict`.
        prefix (str, optional): Only load keys under this prefix of the
            checkpoint (mmengine's ``Pretrained(prefix=...)``), e.g.
            ``'backbone.'``.

    Returns:
        str: The resolved file path.
    """
    path = resolve_checkpoint(checkpoint)
    raw = load_checkpoint_file(path)
    if prefix:
        raw = sub_state_dict(extract_state_dict(raw),
                             prefix if prefix.endswith('.') else prefix + '.')
        if not raw:
            raise CheckpointError(f'{path} has no keys under prefix '
                                  f'{prefix!r}')
    state_dict, fmt = to_backbone_state_dict(raw, fmt)
    state_dict = check_compatible(model, state_dict, path)
    result = model.load_state_dict(state_dict, strict=False)
    leftover = [k for k in result.missing_keys
                if not k.endswith('num_batches_tracked')]
    assert not leftover and not result.unexpected_keys, (leftover, result)
    log_once(f'{type(model).__name__}: loaded {len(state_dict)} tensors '
             f'({fmt} layout) from {path}')
    return path
