#!/usr/bin/env python
"""Convert released ECA ImageNet weights into a plain backbone state_dict.

Sources: the official BangguWu/ECANet ``*.pth.tar`` files (ECA-ResNet-18..152,
ECA-MobileNetV2) and timm's ``ecaresnet50d``/``ecaresnet101d`` state dicts.
The output is a dict of tensors that :class:`ECAResNet`, :class:`ECAResNetV1d`
(timm's ResNet-D form) or :class:`ECAMobileNetV2` load with ``strict=True``;
the tool builds that backbone and checks it before writing.

Example::

    python tools/convert_checkpoint.py eca_resnet101_k3357.pth.tar \
        checkpoints/eca_r101_backbone.pth
    python tools/convert_checkpoint.py ecaresnet50d.pth ecaresnet50d_mmdet.pth
"""
import argparse
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from eca_mmdet.checkpoint import (CheckpointError, eca_kernel_sizes,  # noqa
                                  load_checkpoint_file, to_backbone_state_dict)
from eca_mmdet.checkpoint.zoo import presets_for  # noqa: E402

DEPTHS = {(2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34,
          (3, 4, 6, 3, True): 50, (3, 4, 23, 3, True): 101,
          (3, 8, 36, 3, True): 152}


def describe(state_dict):
    """Infer the backbone config that ``state_dict`` belongs to."""
    kernels = eca_kernel_sizes(state_dict)
    if 'features.0.0.weight' in state_dict:
        return dict(type='ECAMobileNetV2'), kernels
    blocks = []
    for stage in range(1, 5):
        idx = {k.split('.')[1] for k in state_dict
               if k.startswith(f'layer{stage}.')}
        blocks.append(len(idx))
    bottleneck = 'layer1.0.conv3.weight' in state_dict
    depth = DEPTHS.get((*blocks, bottleneck))
    if depth is None:
        raise CheckpointError(f'unrecognised ResNet layout: blocks per stage '
                              f'{blocks}, bottleneck={bottleneck}')
    per_stage = []
    for ks in kernels.values():
        if len(set(ks)) != 1:
            raise CheckpointError(f'ECA kernel sizes vary inside a stage: '
                                  f'{dict(kernels)}')
        per_stage.append(ks[0])
    v1d = 'stem.0.weight' in state_dict
    cfg = dict(type='ECAResNetV1d' if v1d else 'ECAResNet', depth=depth,
               k_size=tuple(per_stage))
    return cfg, kernels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official *.pth.tar, timm state dict, '
                        'or mmdet detector checkpoint')
    parser.add_argument('dst', help='output file (plain state_dict)')
    parser.add_argument('--format', default='auto',
                        choices=['auto', 'official', 'timm', 'mmdet'],
                        help='key layout of SRC (default: detect)')
    args = parser.parse_args(argv)

    from mmdet.registry import MODELS

    import eca_mmdet  # noqa: F401  (registers the backbones)

    try:
        raw = load_checkpoint_file(args.src)
        state_dict, fmt = to_backbone_state_dict(raw, args.format)
        cfg, kernels = describe(state_dict)
        model = MODELS.build(cfg)
        model.load_state_dict(state_dict, strict=True)
    except (CheckpointError, RuntimeError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(state_dict, args.dst)
    print(f'source layout: {fmt}; {len(state_dict)} tensors')
    for stage, ks in kernels.items():
        print(f'  {stage}: ECA k = {", ".join(map(str, sorted(set(ks))))}'
              f' ({len(ks)} modules)')
    if cfg['type'] != 'ECAMobileNetV2':
        print(f'  k per stage: {", ".join(map(str, cfg["k_size"]))}')
        presets = presets_for(cfg['depth'], cfg['k_size'])
        if presets and cfg['type'] == 'ECAResNet':
            print(f'  matches released preset: {presets[0]}')
    print(f'checked: loads strictly into {cfg}')
    print(f'wrote {args.dst}')
    print(f"use: backbone=dict(..., init_cfg=dict(type='Pretrained', "
          f"checkpoint='{args.dst}'))")
    return 0


if __name__ == '__main__':
    sys.exit(main())
