"""Kill a real training subprocess (SIGKILL) mid-iteration and while it
writes a checkpoint, resume it, and check that the final weights are
bitwise those of an uninterrupted run with the same seed.

Faults are injected from inside the training process by a small module that
this test writes and loads through ``custom_imports``: it SIGKILLs its own
process at an exact point (after ``loss.backward()`` of a given iteration,
at the fsync of a given checkpoint's temporary file, at the fsync of the
``last_checkpoint`` update), so the kill lands at the same place on every
machine. (A config inheriting the demo config adds the module to
``custom_imports``.) Bitwise equality holds on the CPU with one thread and
``randomness.deterministic=True``: same seed, same data order, same
augmentation draws (EpochSeedHook), same sampler draws.
"""
import glob
import os
import os.path as osp
import signal

import pytest
import torch

from demo_training import CONFIG, EPOCHS, ITERS_PER_EPOCH, train_demo

INJECTOR = '''
import os, signal
from mmengine.optim import OptimWrapper

KIND, _, ARG = os.environ.get('ECA_TEST_KILL', '').partition(':')


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


if KIND == 'after_backward':            # mid-iteration: grads, no step yet
    _backward, _count = OptimWrapper.backward, [0]

    def backward(self, loss, **kwargs):
        _backward(self, loss, **kwargs)
        _count[0] += 1
        if _count[0] == int(ARG):
            _die()
    OptimWrapper.backward = backward
elif KIND in ('checkpoint_fsync', 'last_checkpoint_fsync'):
    _fsync = os.fsync

    def fsync(fd):
        try:
            path = os.readlink(f'/proc/self/fd/{fd}')
        except (OSError, TypeError):
            path = ''
        name, work = os.path.basename(path), os.path.dirname(path)
        if KIND == 'checkpoint_fsync' and \\
                name.startswith(f'.epoch_{ARG}.pth.'):
            _die()                       # data written, not yet renamed
        if KIND == 'last_checkpoint_fsync' and \\
                name.startswith('.last_checkpoint.') and \\
                os.path.isfile(os.path.join(work, f'epoch_{ARG}.pth')):
            _die()                       # new checkpoint in place, pointer not
        _fsync(fd)
    os.fsync = fsync
'''


@pytest.fixture(scope='module')
def injector(tmp_path_factory):
    """A config inheriting the demo's that also imports the fault module."""
    inj = tmp_path_factory.mktemp('inject')
    (inj / 'eca_fault_injection.py').write_text(INJECTOR)
    (inj / 'config.py').write_text(
        f'_base_ = [{CONFIG!r}]\n'
        "custom_imports = dict(imports=['eca_mmdet', 'eca_mmdet.engine', "
        "'eca_fault_injection'],"
        ' allow_failed_imports=False)\n')
    return str(inj)


def train(root, work, inj, kill=None, resume=False):
    env = dict(PYTHONPATH=os.pathsep.join(
        [inj, os.environ.get('PYTHONPATH', '')]))
    if kill:
        env['ECA_TEST_KILL'] = kill
    return train_demo(root, work, config=osp.join(inj, 'config.py'),
                      extra_env=env, resume=resume)


def final_state(work):
    from eca_mmdet.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(osp.join(work, f'epoch_{EPOCHS}.pth'))
    return ckpt['state_dict'], ckpt['optimizer']


@pytest.fixture(scope='module')
def reference(demo_run):
    """The uninterrupted run: the suite's demo training (same seed, data and
    options, without the fault module)."""
    return final_state(demo_run[1])


def assert_bitwise_equal(got, want):
    (sd, opt), (sd_ref, opt_ref) = got, want
    assert sd.keys() == sd_ref.keys()
    differ = [k for k in sd if not torch.equal(sd[k], sd_ref[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    for p, s in opt['state'].items():
        for k, v in s.items():
            assert torch.equal(v, opt_ref['state'][p][k]), (p, k)


@pytest.mark.parametrize('kill, resumes_from', [
    (f'after_backward:{ITERS_PER_EPOCH + 2}', 'epoch_1.pth'),
    ('checkpoint_fsync:2', 'epoch_1.pth'),
    # mmengine has written last_checkpoint (plainly) before our atomic
    # rewrite; epoch_1.pth is still there, removed only after the rewrite
    ('last_checkpoint_fsync:2', 'epoch_2.pth'),
])
def test_killed_run_resumes_to_the_same_weights(demo_run, injector, reference,
                                                tmp_path, kill, resumes_from):
    root, work = demo_run[0], str(tmp_path / 'w')
    r = train(root, work, injector, kill=kill)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    # what the killed run left: a complete previous checkpoint that
    # last_checkpoint points to, and never a partial file under a real name
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == resumes_from
    from eca_mmdet.checkpoint import load_checkpoint_file
    for pth in glob.glob(osp.join(work, 'epoch_*.pth')):
        assert 'state_dict' in load_checkpoint_file(pth)
    leftovers = glob.glob(osp.join(work, '.*.tmp'))
    if kill.startswith('checkpoint_fsync') or kill.startswith('last'):
        assert leftovers, 'the kill should have hit a temporary file'

    r = train(root, work, injector, resume=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f'resumed epoch: {resumes_from[6]}' in r.stdout + r.stderr
    assert not glob.glob(osp.join(work, '.*.tmp')), 'stale temp files left'
    assert_bitwise_equal(final_state(work), reference)
