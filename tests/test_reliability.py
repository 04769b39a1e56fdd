"""Crash-safe checkpoints, NaN stop, and loading that cannot run code."""
import os
import os.path as osp
import subprocess
import sys
import types

import pytest
import torch

import eca_mmdet  # noqa: F401
from eca_mmdet.checkpoint import CheckpointError, load_checkpoint_file
from eca_mmdet.engine import (
    FiniteLossHook,
    NonFiniteLossError,
    SafeCheckpointHook,
)
from eca_mmdet.engine.atomic_backend import _atomic_write

from helpers import ROOT


class _Exploit:
    """Unpickling this runs ``touch MARKER`` (a stand-in for any code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def malicious_checkpoint(path, marker):
    # a valid-looking torch checkpoint whose pickle calls os.system
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)},
                'meta': _Exploit(marker)}, path)


@pytest.fixture(params=['weights_only', 'allow_list_unpickler'])
def loader_path(request, monkeypatch):
    """Both ways ``load_checkpoint_file`` reads mmengine checkpoints:
    ``weights_only=True`` + torch's allow-list (torch >= 2.5) and the
    restricted unpickler (older torch; forced here on any torch)."""
    from eca_mmdet.checkpoint import safe_load
    if request.param == 'weights_only' and \
            not safe_load.HAS_NAMED_SAFE_GLOBALS:
        pytest.skip(f'torch {torch.__version__} has no named safe globals '
                    f'(torch >= 2.5)')
    if request.param == 'allow_list_unpickler':
        monkeypatch.setattr(safe_load, 'HAS_NAMED_SAFE_GLOBALS', False)
    return request.param


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'evil.pth'
    malicious_checkpoint(str(path), str(marker))
    assert not marker.exists()
    return path, marker


def test_loader_refuses_code_execution(evil, loader_path):
    path, marker = evil
    with pytest.raises(CheckpointError, match='refusing to load'):
        load_checkpoint_file(str(path))
    assert not marker.exists()


def test_pretrained_init_refuses(evil):
    from mmdet.registry import MODELS
    path, marker = evil
    m = MODELS.build(dict(type='ECAResNet', depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=str(path))))
    with pytest.raises(CheckpointError, match='could run code'):
        m.init_weights()
    assert not marker.exists()


def test_mmengine_load_paths_refuse(evil):
    """--resume and tools/test.py load through mmengine's CheckpointLoader,
    which eca_mmdet points at the safe loader."""
    from mmengine.runner.checkpoint import _load_checkpoint
    path, marker = evil
    with pytest.raises(CheckpointError, match='refusing to load'):
        _load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


@pytest.mark.parametrize('tool', ['test', 'convert'])
def test_tools_refuse(evil, tmp_path, tool):
    path, marker = evil
    if tool == 'test':
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'test.py'),
               osp.join(ROOT, 'configs', 'faster_rcnn_eca_r50.py'),
               str(path), '--work-dir', str(tmp_path / 'w')]
        # no COCO here: point the test set at a tiny generated one
        from eca_mmdet.datasets import generate_dataset
        generate_dataset(str(tmp_path / 'd'), 2, 2, progress=False)
        cmd += ['--cfg-options',
                f"test_dataloader.dataset.data_root={tmp_path / 'd'}/",
                'test_dataloader.dataset.ann_file=annotations/val.json',
                'test_dataloader.dataset.data_prefix.img=val/',
                f"test_evaluator.ann_file={tmp_path / 'd'}/annotations/"
                'val.json', 'test_dataloader.num_workers=0',
                'test_dataloader.persistent_workers=False']
    else:
        cmd = [sys.executable, osp.join(ROOT, 'tools',
                                        'convert_checkpoint.py'),
               str(path), str(tmp_path / 'out.pth')]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode != 0
    assert 'refusing to load' in r.stderr, r.stderr[-2000:]
    assert not marker.exists()


def test_mmengine_training_checkpoint_loads_with_allow_list(tmp_path,
                                                           loader_path):
    """What mmengine writes (HistoryBuffer, numpy) loads weights_only."""
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('reliability_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(0.01))
    ckpt = {'meta': {'epoch': 1, 'seed': np.int64(3)},
            'message_hub': hub.state_dict(),
            'state_dict': {'w': torch.ones(2)}}
    torch.save(ckpt, tmp_path / 'c.pth')
    out = load_checkpoint_file(str(tmp_path / 'c.pth'))
    assert isinstance(out['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    assert out['message_hub']['log_scalars']['train/loss'].current() == 0.5


def test_restricted_getattr_is_not_the_builtin(tmp_path, loader_path):
    """A pickle that uses getattr to reach anything but HistoryBuffer's
    statistics is refused."""
    from mmengine.logging import HistoryBuffer

    class GetattrExploit:
        def __reduce__(self):
            # an allowed class, but a name outside its statistics methods
            return (getattr, (HistoryBuffer, '__init__'))

    torch.save({'x': GetattrExploit()}, tmp_path / 'g.pth')
    with pytest.raises(CheckpointError, match='refusing'):
        load_checkpoint_file(str(tmp_path / 'g.pth'))


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    target.write_bytes(b'good')

    def boom(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', boom)
    with pytest.raises(OSError):
        _atomic_write(b'partial', str(target), 'wb')
    assert target.read_bytes() == b'good'
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']


def test_mmengine_writes_checkpoints_through_the_atomic_backend(tmp_path,
                                                                monkeypatch):
    """mmengine's own save_checkpoint (used by the Runner) goes through
    AtomicLocalBackend: a failed write leaves the old file untouched."""
    from mmengine.fileio import get_file_backend
    from mmengine.runner.checkpoint import save_checkpoint

    from eca_mmdet.engine import AtomicLocalBackend
    target = tmp_path / 'epoch_1.pth'
    assert type(get_file_backend(str(target))) is AtomicLocalBackend
    save_checkpoint({'state_dict': {'w': torch.ones(2)}}, str(target))
    good = target.read_bytes()

    def boom(fd):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'fsync', boom)
    with pytest.raises(OSError):
        save_checkpoint({'state_dict': {'w': torch.zeros(2)}}, str(target))
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']


def test_mmengine_private_surface(tmp_path):
    """The one private mmengine attribute eca_mmdet uses
    (engine/atomic_backend.py): mmengine caches built file backends in
    ``mmengine.fileio.io.backend_instances``; a ``LocalBackend`` cached
    before the opt-in is dropped there so that writes become atomic."""
    from mmengine.fileio import LocalBackend, get_file_backend
    from mmengine.fileio import io as mmengine_io
    from mmengine.fileio.backends import register_backend

    from eca_mmdet.engine import AtomicLocalBackend
    from eca_mmdet.engine.atomic_backend import register_atomic_backend
    assert isinstance(mmengine_io.backend_instances, dict)
    mmengine_io.backend_instances.clear()  # as in a fresh process
    register_backend('local', LocalBackend, force=True, prefixes='')
    try:
        # mmengine.fileio.put/get/... cache their backend like this
        stale = get_file_backend(str(tmp_path), enable_singleton=True)
        assert type(stale) is LocalBackend
        assert stale in mmengine_io.backend_instances.values()
    finally:
        register_atomic_backend()
    assert type(get_file_backend(str(tmp_path), enable_singleton=True)) \
        is AtomicLocalBackend


def _fake_runner(tmp_path, saved):
    from mmengine.logging import MessageHub, MMLogger

    def save_checkpoint(out_dir, filename, *a, **k):
        if saved.get('crash'):
            raise KeyboardInterrupt('killed while writing')
        _atomic_write(b'ckpt', osp.join(out_dir, filename), 'wb')
        saved.setdefault('files', []).append(filename)

    return types.SimpleNamespace(
        work_dir=str(tmp_path), message_hub=MessageHub.get_instance('fake'),
        logger=MMLogger.get_instance('fake'), epoch=0, iter=0, max_epochs=9,
        save_checkpoint=save_checkpoint)


def test_safe_checkpoint_hook_order(tmp_path):
    """Driven through mmengine's public hook methods: the old checkpoint is
    removed only after the new one and its pointer are in place."""
    saved = {}
    runner = _fake_runner(tmp_path, saved)
    (tmp_path / 'epoch_8.pth').write_bytes(b'from a longer earlier run')
    hook = SafeCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(runner)
    for epoch in (0, 1):
        runner.epoch = epoch
        hook.after_train_epoch(runner)
    assert saved['files'] == ['epoch_1.pth', 'epoch_2.pth']
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == [
        'epoch_2.pth', 'epoch_8.pth']  # later steps are not this run's
    assert (tmp_path / 'last_checkpoint').read_text().endswith('epoch_2.pth')
    # killed while writing epoch 3: epoch 2 and its pointer survive
    saved['crash'] = True
    runner.epoch = 2
    with pytest.raises(KeyboardInterrupt):
        hook.after_train_epoch(runner)
    assert (tmp_path / 'epoch_2.pth').read_bytes() == b'ckpt'
    assert (tmp_path / 'last_checkpoint').read_text().endswith('epoch_2.pth')
    assert not list(tmp_path.glob('*.tmp'))


def test_finite_loss_hook_names_iteration_and_term():
    hook = FiniteLossHook()
    runner = types.SimpleNamespace(iter=41, epoch=2)
    hook.after_train_iter(runner, 0, outputs=dict(
        loss=torch.tensor(1.0), loss_cls=torch.tensor(0.5)))
    with pytest.raises(NonFiniteLossError) as e:
        hook.after_train_iter(runner, 0, outputs=dict(
            loss=torch.tensor(float('nan')),
            loss_bbox=torch.tensor(float('inf')),
            loss_cls=torch.tensor(0.3), acc=torch.tensor(90.0)))
    msg = str(e.value)
    assert 'iteration 42' in msg and 'epoch 3' in msg
    assert 'loss=nan' in msg and 'loss_bbox=inf' in msg
    assert 'loss_cls' not in msg


@pytest.mark.parametrize('key, match', [
    ('trian_cfg.max_epochs', "no key 'trian_cfg'; did you mean train_cfg"),
    ('model.backbone.k_sise', "did you mean model.backbone.k_size"),
    ('model.bakbone.depth', "no key 'bakbone'"),
])
def test_cfg_options_typos_are_reported(key, match):
    from mmengine.config import Config

    from eca_mmdet.cli import ConfigError
    from eca_mmdet.cli.config import check_cfg_options
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'faster_rcnn_eca_r50.py'))
    cfg.model.backbone.k_size = 3
    with pytest.raises(ConfigError, match=match):
        check_cfg_options(cfg, {key: 1})
    # legitimate options pass: existing keys, new leaves, list indices
    check_cfg_options(cfg, {'train_cfg.max_epochs': 1,
                            'model.backbone.with_cp': True,
                            'param_scheduler.0.end': 10})
