"""The paper's detectors train under mixed precision, on every device, with
:func:`~eca_mmdet.layers.mmcv_ops_fp32.mmcv_ops_in_fp32` on (what
``tools/train.py --amp`` turns on through ``MMCVOpsInFP32Hook``).

On CUDA the steps run through mmengine's ``AmpOptimWrapper`` (dynamic loss
scaling) in float16 and bfloat16, as ``--amp [--amp-dtype bfloat16]`` does;
mmengine refuses that wrapper without a GPU, so on the CPU the same
``train_step`` runs in ``torch.autocast('cpu', torch.bfloat16)`` with the
plain ``OptimWrapper``. mmcv 2.1 lacks bfloat16 in RoIAlign (CUDA and CPU),
the CUDA sigmoid focal loss and the CPU NMS: without the opt-in, Faster and
Mask R-CNN stop on the CPU and all three on CUDA (test_mmcv_ops_fp32.py
checks each op, with and without the opt-in).
"""
import os.path as osp
from contextlib import nullcontext

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import eca_mmdet  # noqa: F401
from eca_mmdet.layers.mmcv_ops_fp32 import mmcv_ops_in_fp32

from helpers import ROOT

DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)
CONFIGS = ['retinanet_eca_r50.py', 'faster_rcnn_eca_r50.py',
           'mask_rcnn_eca_r50.py']


def mmcv_cuda_ops():
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() != 'not available'


def batch(n=2, size=64):
    """``n`` random ``size`` x ``size`` images with two objects each (boxes
    and box-shaped masks), as mmdet's pipeline packs them (uint8 CHW images,
    DetDataSample with gt_instances)."""
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[5., 6., 35., 45.], [25., 20., 60., 55.]])
    boxes = boxes * size / 64
    masks = torch.zeros(2, size, size, dtype=torch.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
        mask[y1:y2, x1:x2] = 1
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1.0, 1.0), flip=False))
        s.gt_instances = InstanceData(
            bboxes=boxes, labels=torch.tensor([1, 3]),
            masks=BitmapMasks(masks.numpy(), size, size))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def build_detector(config, device):
    """The config's detector, untrained: the blocks' last BN starts at one,
    not zero (``zero_init_residual`` would make the gates' gradients vanish
    for the first steps), as after ImageNet pre-training; the R-CNN heads
    sample 64 RoIs per image instead of 512 (tiny images, fast steps)."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    cfg.model.backbone.update(init_cfg=None, zero_init_residual=False)
    if 'rcnn' in cfg.model.train_cfg:
        cfg.model.train_cfg.rcnn.sampler.num = 64
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    return model.train()


@pytest.mark.parametrize('dtype', list(DTYPES))
@pytest.mark.parametrize('config', CONFIGS)
def test_detector_training_step(config, dtype, device):
    """Three steps on one batch with the opt-in: every loss finite, the total
    loss falls, every trainable ECA kernel moves, parameters stay float32."""
    if device == 'cuda' and not mmcv_cuda_ops():
        pytest.skip('this mmcv was built without CUDA ops (RoIAlign and the '
                    'sigmoid focal loss have no CUDA kernel): build it with '
                    'FORCE_CUDA=1')
    if device == 'cpu' and dtype == 'fp16':
        pytest.skip('float16 is CUDA\'s AMP format; on the CPU its '
                    'convolutions have no fast kernels (these steps take '
                    '10x the bfloat16 time); the blocks are tested in CPU '
                    'float16 autocast in test_eca_resnet_equivalence')
    model = build_detector(config, device)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if device == 'cuda':
        from mmengine.optim import AmpOptimWrapper
        wrapper, outer = AmpOptimWrapper(optimizer=sgd,
                                         dtype=DTYPES[dtype]), nullcontext()
    else:
        wrapper = OptimWrapper(optimizer=sgd)
        outer = torch.autocast('cpu', dtype=DTYPES[dtype])
    # frozen_stages=1 as in the paper's configs: layer1 (3 blocks) is frozen
    eca = [m.conv.weight for n, m in model.backbone.named_modules()
           if n.endswith('.eca') and m.conv.weight.requires_grad]
    assert len(eca) == 13
    before = [w.detach().clone() for w in eca]
    data = batch()
    totals = []
    for _ in range(3):
        with mmcv_ops_in_fp32(), outer:
            losses = model.train_step(data, wrapper)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
        totals.append(losses['loss'].item())
    assert totals[-1] < totals[0], totals
    assert all(p.dtype == torch.float32 for p in model.parameters())
    moved = [not torch.equal(w, b) for w, b in zip(eca, before)]
    assert all(moved), moved

