"""A detector's training step under mixed precision, on every device.

On CUDA the step runs through mmengine's ``AmpOptimWrapper`` (dynamic loss
scaling for float16), as ``--amp`` / ``optim_wrapper=dict(type=
'AmpOptimWrapper')`` configs do; mmengine refuses that wrapper without a GPU,
so on the CPU the same ``train_step`` runs in ``torch.autocast('cpu')`` with
the plain ``OptimWrapper``. RetinaNet needs no mmcv CUDA kernel; Faster
R-CNN's RoIAlign does, and is skipped on CUDA where the mmcv at hand was
built without CUDA ops, and on the CPU, where mmcv's NMS takes float32
only.
"""
import os.path as osp
from contextlib import nullcontext

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import eca_mmdet  # noqa: F401

from helpers import ROOT

DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def mmcv_cuda_ops():
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() != 'not available'


def batch(n=2, size=128):
    """``n`` random images with two boxes each, as mmdet's pipeline packs
    them (uint8 CHW images, DetDataSample with gt_instances)."""
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        s = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1.0, 1.0), flip=False))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[10., 12., 70., 90.],
                                 [50., 40., 120., 110.]]),
            labels=torch.tensor([1, 3]))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('dtype', list(DTYPES))
@pytest.mark.parametrize('config', ['retinanet_eca_r50.py',
                                    'faster_rcnn_eca_r50.py'])
def test_detector_training_step(config, dtype, device):
    """Five steps on one batch: every loss finite, the total loss falls,
    every trainable ECA kernel moves, parameters stay float32. The blocks'
    last BN starts at one, not zero (``zero_init_residual`` would make the
    gates' gradients vanish for the first steps), as after ImageNet
    pre-training."""
    if device == 'cuda' and 'rcnn' in config and not mmcv_cuda_ops():
        pytest.skip('this mmcv was built without CUDA ops (RoIAlign has no '
                    'CUDA kernel): build it with FORCE_CUDA=1')
    if device == 'cpu' and 'rcnn' in config:
        pytest.skip('mmcv 2.1\'s CPU NMS takes float32 only ("expected '
                    'scalar type Float but found BFloat16" in the RPN under '
                    'CPU autocast); on CUDA it takes half precision')
    if device == 'cpu' and dtype == 'fp16':
        pytest.skip('float16 is CUDA\'s AMP format; on the CPU its '
                    'convolutions have no fast kernels (these steps take '
                    '10x the bfloat16 time); the blocks are tested in CPU '
                    'float16 autocast in test_eca_resnet_equivalence')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    cfg.model.backbone.update(init_cfg=None, zero_init_residual=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
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
    for _ in range(5):
        with outer:
            losses = model.train_step(data, wrapper)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
        totals.append(losses['loss'].item())
    assert totals[-1] < totals[0], totals
    assert all(p.dtype == torch.float32 for p in model.parameters())
    moved = [not torch.equal(w, b) for w, b in zip(eca, before)]
    assert all(moved), moved
