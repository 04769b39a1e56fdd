"""The batch line of ``BatchSizeLogHook`` with gradient accumulation and a
``paramwise_cfg`` lr multiplier, in an mmengine Runner: the images per
optimizer step, the config's lr and multipliers, and what
``--auto-scale-lr`` does, in agreement with the lr mmengine sets."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import eca_mmdet.engine  # noqa: F401  (registers BatchSizeLogHook)


class Toy(BaseModel):
    """A "backbone" and a "head": the multiplier applies to one of them."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.head(self.backbone(torch.stack(inputs)))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def train_and_log(tmp_path, enable):
    """Train one iteration of 4 images, accumulating 4 iterations per step,
    backbone lr x0.1, base_batch_size 16; return the log and the runner."""
    cfg = dict(
        model=Toy(), work_dir=str(tmp_path), default_scope='mmdet',
        train_dataloader=dict(
            dataset=[dict(inputs=torch.ones(2))] * 4, batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.01), accumulative_counts=4,
            paramwise_cfg=dict(custom_keys={
                'backbone': dict(lr_mult=0.1),
                'neck': dict(lr_mult=2.0)})),  # the toy has no neck
        auto_scale_lr=dict(base_batch_size=16, enable=enable),
        custom_hooks=[dict(type='BatchSizeLogHook')],
        default_hooks=dict(checkpoint=None),
        experiment_name=tmp_path.name)  # mmengine's logger is per name
    # the serialisable part as the Runner's cfg, as Runner.from_cfg has it
    plain = {k: v for k, v in cfg.items() if k != 'model'}
    plain['train_dataloader'] = dict(cfg['train_dataloader'], dataset=None)
    runner = Runner(**cfg, cfg=Config(plain))
    runner.train()
    log, = glob.glob(osp.join(runner.log_dir, '*.log'))
    with open(log) as f:
        return f.read(), runner


@pytest.mark.parametrize('enable', [False, True])
def test_accumulation_line(tmp_path, enable):
    log, runner = train_and_log(tmp_path, enable)
    line, = [s for s in log.splitlines() if 'batch: ' in s]
    head = ('batch: 1 process(es) x 4 images x 4 accumulated iterations = 16 '
            'images per optimizer step; config base_batch_size 16; ')
    tail = ('; --auto-scale-lr counts the 4 images per iteration, not per '
            'optimizer step (mmengine ignores accumulative_counts 4; the '
            'linear rule for the 16 images per optimizer step gives 0.01); lr '
            'multipliers: backbone x0.1, neck x2 (no trainable parameter '
            'matches)')
    lr = ("lr 0.0025: --auto-scale-lr scaled the config's 0.01 by 4/16"
          if enable else
          'lr 0.01 as in the config, not scaled (--auto-scale-lr would use '
          '0.0025)')
    assert line.endswith(head + lr + tail), line
    # what mmengine did: the line's lr and multiplier are the optimizer's
    lrs = {id(p): g['lr']  # no scheduler: the lr throughout
           for g in runner.optim_wrapper.optimizer.param_groups
           for p in g['params']}
    expected = 0.0025 if enable else 0.01
    assert lrs[id(runner.model.head.weight)] == pytest.approx(expected)
    assert lrs[id(runner.model.backbone.weight)] == pytest.approx(
        expected * 0.1)
    assert ('Scaling the original LR by 0.25' in log) == enable
