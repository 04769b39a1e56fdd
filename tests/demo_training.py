"""Train the built-in demo (Mask R-CNN, half-width ECA-ResNet-18) through
``tools/train.py`` on generated shapes, deterministically."""
import os
import os.path as osp
import subprocess
import sys

from helpers import ROOT

CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
EPOCHS, ITERS_PER_EPOCH = 3, 4   # 16 training images, batch 4


def train_demo(root, work, config=CONFIG, extra_env=None, resume=False):
    """``tools/train.py config`` on ``root`` for :data:`EPOCHS` epochs,
    validating after each, on one thread with ``randomness.deterministic``
    (the same seed gives bitwise the same weights); returns the
    ``CompletedProcess``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env.pop('ECA_TEST_KILL', None)
    env.update(extra_env or {})
    args = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
            '--work-dir', work, '--data-root', root, '--cfg-options',
            'randomness.seed=7', 'randomness.deterministic=True',
            f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1',
            'param_scheduler.0.end=2',  # warm-up shorter than the run
            'default_hooks.checkpoint.max_keep_ckpts=1',
            'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1']
    if resume:
        args.append('--resume')
    return subprocess.run(args, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
