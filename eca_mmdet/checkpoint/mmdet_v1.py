"""The authors' released COCO detectors (MMDetection v1) to MMDetection 3.

An MMDetection v1 checkpoint is ``{'meta': {'mmdet_version': '1.x',
'config': '<config path>\\n<config text>'}, 'state_dict': ...}``. Its heads
differ from mmdet 3's in three ways, and only these are changed:

* two-stage heads sit at the top level (``bbox_head.``, ``mask_head.``);
  mmdet 3 nests them under ``roi_head.``;
* softmax classifiers (``bbox_head.fc_cls``) have 81 outputs with the
  background *first*; mmdet 3 puts it *last*: rows are rotated, weight and
  bias alike;
* class-specific outputs carry a background block: ``fc_reg`` 81 x 4 rows
  and ``conv_logits`` 81 channels, background first; mmdet 3 has none, so
  the first block is dropped, weight and bias alike.

Sigmoid classifiers (``rpn_cls``, ``retina_cls``) have no background output
in either version and are copied as they are, as are the backbone (the ECA
layers are ``layerN.i.eca.conv``, as in :class:`ECAResNet`), FPN and the
box/mask convolutions.
"""
import re
from collections import OrderedDict
from typing import Tuple

import torch

from .convert import (
    StateDict,
    blocks_per_stage,
    eca_kernel_sizes,
    format_kernels,
    resnet_depth,
    stage_kernel_sizes,
    strip_prefix,
    sub_state_dict,
)
from .errors import CheckpointError
from .zoo import RELEASED_CHECKPOINTS

NUM_CLASSES = 80  # COCO
# released detector -> ECA kernel size per stage (layer1..4), by depth
RELEASED_KERNELS = {
    (name.split('_ecanet')[0].lower(), info['depth']): info['k_size']
    for name, info in RELEASED_CHECKPOINTS.items()
    if info['family'] == 'detector'
}
# the head modules each converted detector has in v1 (besides backbone, neck)
_TWO_STAGE = (r'rpn_head\.rpn_(conv|cls|reg)',
              r'bbox_head\.(shared_fcs\.\d+|fc_cls|fc_reg)')
HEADS = {
    'faster_rcnn': _TWO_STAGE,
    'mask_rcnn': _TWO_STAGE + (
        r'mask_head\.(convs\.\d+|upsample|conv_logits)', ),
    'retinanet': (
        r'bbox_head\.(cls_convs\.\d+|reg_convs\.\d+|retina_cls|retina_reg)',
    ),
}


def is_mmdet_v1(checkpoint) -> bool:
    """Whether a loaded checkpoint was written by MMDetection 1.x."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    version = str((meta or {}).get('mmdet_version', ''))
    return version.startswith('1.') and 'state_dict' in checkpoint


def detector_of(state_dict: StateDict) -> str:
    """``'faster_rcnn'``, ``'mask_rcnn'`` or ``'retinanet'`` from the heads;
    :class:`CheckpointError` for any other detector."""
    if 'mask_head.conv_logits.weight' in state_dict:
        det = 'mask_rcnn'
    elif 'bbox_head.fc_cls.weight' in state_dict:
        det = 'faster_rcnn'
    elif 'bbox_head.retina_cls.weight' in state_dict:
        det = 'retinanet'
    else:
        det = None
    known = re.compile(
        r'(backbone|neck|' + '|'.join(HEADS.get(det, ())) + r')\.')
    unknown = sorted({k.rsplit('.', 1)[0] for k in state_dict
                      if det is None or not known.match(k)})
    if unknown:
        heads = sorted({k.split('.')[0] for k in state_dict})
        raise CheckpointError(
            f'unknown head in this MMDetection v1 checkpoint '
            f'(top-level modules: {", ".join(heads)}; not understood: '
            f'{", ".join(unknown[:6])}). Only the released ECA Faster '
            f'R-CNN, Mask R-CNN and RetinaNet (FPN, 2-fc box head) '
            f'convert; other detectors need their own mapping.')
    return det


def _check_rows(state_dict: StateDict, key: str, rows: int, what: str):
    got = state_dict[key].shape[0]
    if got != rows:
        raise CheckpointError(
            f'{key} has {got} outputs, expected {rows} ({what} for COCO\'s '
            f'{NUM_CLASSES} classes); a v1 detector trained on another '
            f'dataset is not one of the released COCO models')


def released_config(state_dict: StateDict, det: str) -> str:
    """The ``configs/released/`` name that fits the backbone;
    :class:`CheckpointError` if the ECA kernels fit none."""
    backbone = sub_state_dict(state_dict, 'backbone.')
    kernels = eca_kernel_sizes(backbone)
    if not kernels:
        raise CheckpointError(
            'no ECA weights in the backbone (no backbone.layerN.i.eca.conv.'
            'weight): not an ECA-ResNet detector')
    blocks = tuple(blocks_per_stage(backbone).values())
    depth = resnet_depth(backbone)
    want = RELEASED_KERNELS.get((det, depth))
    if want is None or stage_kernel_sizes(backbone) != tuple(want):
        options = '; '.join(f'{d} R-{n}: {",".join(map(str, k))}'
                            for (d, n), k in RELEASED_KERNELS.items())
        raise CheckpointError(
            f'{det} with a {blocks} block ResNet and ECA kernel sizes '
            f'{format_kernels(kernels)} matches no released config '
            f'({options}); '
            f'write a config with backbone=dict(type=\'ECAResNet\', '
            f'depth=..., k_size=(...)) for it')
    return f'{det}_eca_r{depth}_v1'


def convert_mmdet_v1(checkpoint) -> Tuple[StateDict, str]:
    """Convert a loaded v1 checkpoint; return ``(state_dict, config)``,
    ``config`` being the matching name under ``configs/released/``.

    Raises:
        CheckpointError: The file is not a v1 checkpoint, or has a head,
            class count or backbone that no released config describes.
    """
    if not is_mmdet_v1(checkpoint):
        version = (checkpoint.get('meta') or {}).get('mmdet_version') \
            if isinstance(checkpoint, dict) else None
        raise CheckpointError(
            f'not an MMDetection v1 checkpoint (meta.mmdet_version is '
            f'{version!r}, expected 1.x)')
    state_dict = strip_prefix(OrderedDict(
        (k, v) for k, v in checkpoint['state_dict'].items()
        if isinstance(v, torch.Tensor)), 'module.')
    det = detector_of(state_dict)
    config = released_config(state_dict, det)
    n = NUM_CLASSES
    if det == 'retinanet':
        _check_rows(state_dict, 'bbox_head.retina_cls.weight', 9 * n,
                    '9 anchors x classes, sigmoid')
        return OrderedDict(state_dict), config
    _check_rows(state_dict, 'bbox_head.fc_cls.weight', n + 1,
                'background + classes')
    _check_rows(state_dict, 'bbox_head.fc_reg.weight', (n + 1) * 4,
                '4 per class and background')
    if det == 'mask_rcnn':
        _check_rows(state_dict, 'mask_head.conv_logits.weight', n + 1,
                    'background + classes')
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('bbox_head.fc_cls.'):
            value = torch.cat([value[1:], value[:1]])  # background last
        elif key.startswith('bbox_head.fc_reg.'):
            value = value[4:]  # no background box
        elif key.startswith('mask_head.conv_logits.'):
            value = value[1:]  # no background mask
        if key.startswith(('bbox_head.', 'mask_head.')):
            key = 'roi_head.' + key
        out[key] = value.clone()
    return out, config
