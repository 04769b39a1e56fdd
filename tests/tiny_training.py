"""Train a config of ``configs/`` a few iterations on generated data through
``tools/train.py``: its model as it is (no ImageNet weights), the demo's
128-pixel shapes as the data."""
import os.path as osp

from helpers import ROOT, run_tool

CLASSES = ('circle', 'rectangle', 'triangle', 'cross')
TINY = '''
_base_ = [{config!r}]
model = dict(backbone=dict(init_cfg=None){model})
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs')]
data = dict(data_root={root!r}, metainfo=dict(classes={classes!r}))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    batch_sampler=None, dataset=dict(
        _delete_=True, type='CocoDataset', **data, pipeline=pipeline,
        ann_file='annotations/train.json', data_prefix=dict(img='train/')))
# no validation: the heads keep their 80 COCO classes, the data has 4
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''


def train_tiny(config, tmp_path, model='', images=4):
    """Train ``config`` (a path under ``configs/``) one epoch of ``images``
    generated images, 2 per iteration; return the tool's output."""
    from eca_mmdet.datasets import generate_dataset
    root = osp.join(str(tmp_path / 'shapes'), '')
    generate_dataset(root, num_train=images, num_val=1, seed=3,
                     progress=False)
    tiny = tmp_path / 'tiny.py'
    tiny.write_text(TINY.format(config=osp.join(ROOT, 'configs', config),
                                model=model, root=root, classes=CLASSES))
    r = run_tool('train.py', tiny, '--work-dir', tmp_path / 'w')
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    iters = images // 2
    assert f'Epoch(train) [1][{iters}/{iters}]' in out, out[-3000:]
    return out
