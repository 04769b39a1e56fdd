#!/usr/bin/env python
"""Convert the authors' released ECA checkpoints for MMDetection 3.

* ImageNet weights -- the official BangguWu/ECANet ``*.pth.tar`` files
  (ECA-ResNet-18..152, ECA-MobileNetV2) and timm's ``ecaresnet50d`` /
  ``ecaresnet101d``: written as a plain backbone state_dict that
  :class:`ECAResNet`, :class:`ECAResNetV1d` or :class:`ECAMobileNetV2` loads
  with ``strict=True``.
* COCO detectors -- the authors' MMDetection v1 Faster R-CNN, Mask R-CNN and
  RetinaNet files: written as an mmdet 3 checkpoint for the matching config
  in ``configs/released/`` (see :mod:`eca_mmdet.checkpoint.mmdet_v1`).

The tool builds the model the output is for and loads it strictly before
writing anything.

Example::

    python tools/convert_checkpoint.py eca_resnet101_k3357.pth.tar \
        checkpoints/eca_r101_backbone.pth
    python tools/convert_checkpoint.py \
        mask_rcnn_ecanet50_k3377_bs8_lr0.01.pth checkpoints/mask_rcnn_v1.pth
"""
import argparse
import os
import os.path as osp
import sys

import torch
from mmdet.utils import register_all_modules

from eca_mmdet.checkpoint import (
    CheckpointError,
    eca_kernel_sizes,
    load_checkpoint_file,
    to_backbone_state_dict,
)
from eca_mmdet.checkpoint.convert import backbone_config
from eca_mmdet.checkpoint.mmdet_v1 import convert_mmdet_v1, is_mmdet_v1
from eca_mmdet.checkpoint.sources import local_checkpoint
from eca_mmdet.checkpoint.zoo import presets_for
from eca_mmdet.cli import run_tool

RELEASED = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                    'configs', 'released')

def load_strictly(model, state_dict, what):
    """The check before anything is written."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f'the converted weights do not load into '
                              f'{what}: {e}') from e


def convert_detector(raw, src, dst):
    """MMDetection v1 detector -> mmdet 3 checkpoint for configs/released."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import MODELS
    from mmengine.config import Config
    state_dict, name = convert_mmdet_v1(raw)
    config = osp.join(RELEASED, f'{name}.py')
    model_cfg = Config.fromfile(config).model
    load_strictly(MODELS.build(model_cfg), state_dict, config)
    meta = raw['meta']
    v1_config = str(meta.get('config', '')).split('\n', 1)[0]
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(meta=dict(dataset_meta=dict(CocoDataset.METAINFO),
                              converted_from=osp.basename(src),
                              mmdet_v1_version=meta['mmdet_version'],
                              mmdet_v1_config=v1_config),
                    state_dict=state_dict), dst)
    config = osp.relpath(config)
    print(f'source: MMDetection {meta["mmdet_version"]} detector '
          f'({v1_config or "no config path"}), {len(state_dict)} tensors')
    print('  ECA k per stage: '
          + ', '.join(map(str, model_cfg.backbone.k_size)))
    print('  heads: two-stage heads under roi_head., fc_cls background '
          'moved last, background box/mask outputs dropped, sigmoid heads '
          'as they are')
    print(f'checked: loads strictly into {config}')
    print(f'wrote {dst}')
    print(f'test: python tools/test.py {config} {dst}')


def convert_backbone(raw, fmt, dst):
    """ImageNet weights -> plain backbone state_dict."""
    from mmdet.registry import MODELS
    state_dict, fmt = to_backbone_state_dict(raw, fmt)
    cfg, kernels = backbone_config(state_dict), eca_kernel_sizes(state_dict)
    load_strictly(MODELS.build(cfg), state_dict, cfg)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(state_dict, dst)
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
    print(f'wrote {dst}')
    print(f"use: backbone=dict(..., init_cfg=dict(type='Pretrained', "
          f"checkpoint='{dst}'))")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official *.pth.tar, timm state dict '
                        '(.pth or .safetensors), mmdet detector checkpoint '
                        '(its backbone), or an MMDetection v1 detector '
                        'released by the authors; a path, an eca:// name '
                        '(e.g. eca://faster_rcnn_ecanet50_k5_bs8_lr0.01, '
                        'fetched on first use), hf-hub:, timm:// or a URL')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--format', default='auto',
                        choices=['auto', 'official', 'timm', 'mmdet'],
                        help='key layout of an ImageNet SRC (default: '
                        'detect)')
    args = parser.parse_args(argv)
    register_all_modules()  # mmdet's names, for the configs' detectors
    raw = load_checkpoint_file(local_checkpoint(args.src))
    if is_mmdet_v1(raw):
        convert_detector(raw, args.src, args.dst)
    else:
        convert_backbone(raw, args.format, args.dst)


if __name__ == '__main__':
    sys.exit(run_tool(main))
