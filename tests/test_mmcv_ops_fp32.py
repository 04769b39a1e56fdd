"""``mmcv_ops_in_fp32``: under bfloat16 autocast, mmcv's RoIAlign (through
mmdet's RoI extractors), sigmoid focal loss, deformable attention and NMS see
float32 tensors and give what they give in float32; without it they fail or
see bfloat16 (mmcv 2.1 lacks it); leaving the context restores mmdet and
mmcv; the hook (in a real Runner, idle inside the context) and ``--amp`` turn
it on, and ``tools/train.py`` restores it after a failed run. All on the
CPU: the CUDA-only kernels are replaced by recorders that compute the same in
Python."""
import importlib.util
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import batched_nms, nms
from mmcv.ops.multi_scale_deform_attn import (
    multi_scale_deformable_attn_pytorch,
)
from mmcv.ops.nms import NMSop
from mmdet.models.dense_heads import rpn_head
from mmdet.models.losses import focal_loss
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from eca_mmdet import cli
from eca_mmdet.engine import MMCVOpsInFP32Hook
from eca_mmdet.layers.mmcv_ops_fp32 import mmcv_ops_in_fp32

BF16 = torch.bfloat16
# the module (``mmcv.ops.roi_align`` as an attribute is the function)
mmcv_roi_align = sys.modules['mmcv.ops.roi_align']
msda = sys.modules['mmcv.ops.multi_scale_deform_attn']


def bf16_autocast():
    return torch.autocast('cpu', dtype=BF16)


def recorder(op, seen):
    """``op`` that appends the dtypes of its tensor arguments to ``seen``."""
    def record(*args):
        seen.append([a.dtype for a in args if isinstance(a, torch.Tensor)])
        return op(*args)
    return record


def test_roi_extractor_runs_roi_align_in_fp32(monkeypatch):
    extractor = SingleRoIExtractor(
        roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
        out_channels=8, featmap_strides=[4, 8])
    g = torch.Generator().manual_seed(0)
    feats = tuple(torch.randn(1, 8, s, s, generator=g).to(BF16)
                  for s in (64, 32))
    # 201.3 is 201.0 in bfloat16: mmdet would round the RoIs to it
    rois = torch.tensor([[0., 3.5, 4.25, 30.75, 40.5],
                         [0., 60.5, 20.25, 201.3, 180.75]])
    original, seen = SingleRoIExtractor.forward, []
    monkeypatch.setattr(mmcv_roi_align, 'roi_align',
                        recorder(mmcv_roi_align.roi_align, seen))
    with bf16_autocast(), pytest.raises(RuntimeError, match='BFloat16'):
        extractor(feats, rois)  # mmcv's RoIAlign has no bfloat16 kernel
    assert seen == [[BF16, BF16]]
    seen.clear()
    with mmcv_ops_in_fp32(), bf16_autocast():
        out = extractor(feats, rois)
    assert seen == [[torch.float32, torch.float32]] * 2  # one per level
    assert out.dtype == BF16
    reference = extractor(tuple(f.float() for f in feats), rois)
    assert torch.equal(out, reference.to(BF16))
    assert SingleRoIExtractor.forward is original  # restored


def test_focal_loss_kernel_gets_fp32(monkeypatch):
    def kernel(pred, target, gamma, alpha, weight, reduction):
        """mmcv's CUDA kernel, in Python: unreduced sigmoid focal loss."""
        one_hot = F.one_hot(target, pred.size(1) + 1)[:, :-1].type_as(pred)
        p = pred.sigmoid()
        pt = (1 - p) * one_hot + p * (1 - one_hot)
        w = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * pt.pow(gamma)
        return F.binary_cross_entropy_with_logits(
            pred, one_hot, reduction='none') * w

    seen = []
    record = recorder(kernel, seen)
    monkeypatch.setattr(focal_loss, '_sigmoid_focal_loss', record)
    pred = torch.randn(6, 4).to(BF16).requires_grad_()
    target = torch.tensor([0, 1, 2, 3, 4, 4])  # 4: background
    with mmcv_ops_in_fp32(), bf16_autocast():
        loss = focal_loss.sigmoid_focal_loss(pred, target)
    assert seen == [[torch.float32, torch.int64]]
    assert loss.dtype == torch.float32
    loss.backward()
    assert pred.grad.dtype == BF16 and pred.grad.abs().sum() > 0
    expected = focal_loss.py_sigmoid_focal_loss(
        pred.detach().float(), F.one_hot(target, 5)[:, :4])
    torch.testing.assert_close(loss, expected)
    assert focal_loss._sigmoid_focal_loss is record  # restored


def test_deformable_attention_kernel_gets_fp32(monkeypatch):
    """DINO's attention on CUDA: mmcv's kernel (here its Python form, as
    ``ext_module``) sees float32 and the output has the value's dtype."""
    seen = []

    def forward(value, shapes, level_start, locations, weights,
                im2col_step):
        seen.append([value.dtype, locations.dtype, weights.dtype])
        # the stand-in computes in float32 whatever it is given (torch 2.1's
        # CPU grid_sample has no bfloat16); what it records is the point
        return multi_scale_deformable_attn_pytorch(
            value.float(), shapes, locations.float(),
            weights.float()).to(value.dtype)

    monkeypatch.setattr(msda, 'ext_module',
                        SimpleNamespace(ms_deform_attn_forward=forward))
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[8, 8], [4, 4]])
    starts = torch.tensor([0, 64])
    value = torch.randn(1, 80, 2, 4, generator=g).to(BF16)
    locations = torch.rand(1, 5, 2, 2, 3, 2, generator=g)  # float32
    weights = torch.rand(1, 5, 2, 2, 3, generator=g).to(BF16)
    args = (shapes, starts, locations, weights, 64)
    msda.MultiScaleDeformableAttnFunction.apply(value, *args)
    assert seen == [[BF16] * 3]  # mmcv casts to the value's dtype
    seen.clear()
    with mmcv_ops_in_fp32():
        out = msda.MultiScaleDeformableAttnFunction.apply(value, *args)
    assert seen == [[torch.float32] * 3]
    assert out.dtype == BF16
    reference = multi_scale_deformable_attn_pytorch(
        value.float(), shapes, locations, weights.float())
    assert torch.equal(out, reference.to(BF16))
    assert 'apply' not in vars(msda.MultiScaleDeformableAttnFunction)


def test_nms_in_fp32():
    """CPU autocast leaves the RPN's boxes and scores in bfloat16: mmcv's
    NMS refuses them, and ``batched_nms`` (as mmdet's modules import it)
    would add its per-level offsets in bfloat16."""
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 700
    wh = 20 + torch.rand(300, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + wh], 1).to(BF16)
    scores = torch.rand(300, generator=g).to(BF16)
    levels = torch.arange(300) % 5
    cfg = dict(type='nms', iou_threshold=0.7)
    with pytest.raises(RuntimeError, match='BFloat16'):
        nms(boxes, scores, 0.5)
    dets_ref, keep_ref = nms(boxes.float(), scores.float(), 0.5)
    bdets_ref, bkeep_ref = batched_nms(boxes.float(), scores.float(), levels,
                                       cfg)
    with mmcv_ops_in_fp32():
        dets, keep = nms(boxes, scores, 0.5)
        bdets, bkeep = rpn_head.batched_nms(boxes, scores, levels, cfg)
    assert torch.equal(keep, keep_ref) and torch.equal(bkeep, bkeep_ref)
    assert torch.equal(dets.float(), dets_ref)
    assert torch.equal(bdets, bdets_ref)
    assert rpn_head.batched_nms is batched_nms  # restored
    with pytest.raises(RuntimeError, match='BFloat16'):
        nms(boxes, scores, 0.5)


def test_hook_turns_it_on_for_the_run():
    original = SingleRoIExtractor.forward
    hook = MMCVOpsInFP32Hook()
    for _ in range(2):  # a hook object may serve more than one run
        hook.before_run(None)
        assert SingleRoIExtractor.forward is not original
        assert SingleRoIExtractor.forward.__wrapped__ is original
        hook.after_run(None)
        assert SingleRoIExtractor.forward is original


def test_hook_inside_the_context_does_nothing():
    """Within ``mmcv_ops_in_fp32()`` (``tools/train.py --amp``) the hook
    neither replaces again nor restores the context's replacement."""
    original = vars(NMSop)['forward']
    with mmcv_ops_in_fp32():
        patched = vars(NMSop)['forward']
        hook = MMCVOpsInFP32Hook()
        hook.before_run(None)
        assert vars(NMSop)['forward'] is patched
        hook.after_run(None)
        assert vars(NMSop)['forward'] is patched
    assert vars(NMSop)['forward'] is original


class Toy(BaseModel):
    """Records, at each training step, whether mmcv's NMS is replaced;
    raises on the first step if ``fail``."""

    def __init__(self, fail=False):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.fail, self.seen = fail, []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.seen.append(hasattr(NMSop.forward, '__wrapped__'))
        if self.fail:
            raise RuntimeError('the run fails')
        return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())


def toy_runner(tmp_path, fail=False):
    """A real mmengine Runner on the CPU, 2 iterations, with the hook."""
    return Runner(
        model=Toy(fail), work_dir=str(tmp_path), default_scope='mmdet',
        train_dataloader=dict(
            dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[dict(type='MMCVOpsInFP32Hook')],
        default_hooks=dict(checkpoint=None),
        experiment_name=tmp_path.name)  # mmengine's logger is per name


def test_hook_in_a_runner(tmp_path):
    original = vars(NMSop)['forward']
    runner = toy_runner(tmp_path)
    assert not hasattr(NMSop.forward, '__wrapped__')
    runner.train()
    assert runner.model.seen == [True, True]  # replaced while training
    assert vars(NMSop)['forward'] is original  # and restored after


def load_train_tool():
    path = osp.join(osp.dirname(__file__), '..', 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('train_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tool_restores_the_ops_after_a_failed_run(tmp_path,
                                                       monkeypatch):
    """mmengine calls no hook after an error: ``tools/train.py`` restores
    mmcv's ops around a run whose config lists the hook."""
    train = load_train_tool()
    original = vars(NMSop)['forward']
    runner = toy_runner(tmp_path, fail=True)
    monkeypatch.setattr(train, 'build_cfg', lambda args: Config(dict(
        custom_hooks=[dict(type='MMCVOpsInFP32Hook')])))
    monkeypatch.setattr(train, 'parse_args', lambda argv: None)
    monkeypatch.setattr(cli, 'build_runner', lambda cfg: runner)
    with pytest.raises(RuntimeError, match='the run fails'):
        train.main([])
    assert runner.model.seen == [True]
    assert vars(NMSop)['forward'] is original


def test_train_tool_amp_config(tmp_path, monkeypatch):
    """``--amp-dtype bfloat16`` (implies ``--amp``): one line on the CPU;
    with a GPU the AMP wrapper with dynamic loss scaling (replacing the
    config's) and the hook."""
    train = load_train_tool()
    monkeypatch.setenv('LOCAL_RANK', '0')
    config = tmp_path / 'amp.py'
    config.write_text('optim_wrapper = dict(optimizer=dict(type="SGD", '
                      'lr=0.01), loss_scale=512.)\n')
    args = train.parse_args([str(config), '--amp-dtype', 'bfloat16',
                             '--work-dir', str(tmp_path)])
    monkeypatch.setattr(train, 'get_device', lambda: 'cpu')
    with pytest.raises(cli.ConfigError, match='--amp needs a GPU'):
        train.build_cfg(args)
    monkeypatch.setattr(train, 'get_device', lambda: 'cuda')
    cfg = train.build_cfg(args)
    assert cfg.optim_wrapper == dict(
        type='AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.01),
        loss_scale='dynamic', dtype='bfloat16')
    assert 'MMCVOpsInFP32Hook' in [h['type'] for h in cfg.custom_hooks]
    cfg = train.build_cfg(train.parse_args([str(config), '--work-dir',
                                                  str(tmp_path)]))
    assert 'type' not in cfg.optim_wrapper
    assert 'MMCVOpsInFP32Hook' not in [h['type'] for h in cfg.custom_hooks]


def test_use_amp_sets_the_wrapper_and_the_hook():
    """What ``tools/train.py --amp --amp-dtype bfloat16`` does to a config."""
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                      custom_hooks=[dict(type='EpochSeedHook')]))
    cli.use_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper == dict(
        type='AmpOptimWrapper', optimizer=dict(type='SGD', lr=0.01),
        loss_scale='dynamic', dtype='bfloat16')
    assert [h['type'] for h in cfg.custom_hooks] == ['EpochSeedHook',
                                                     'MMCVOpsInFP32Hook']
