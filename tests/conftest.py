import os
import os.path as osp

import pytest
import torch

# one torch thread per core: 2 threads alone, 1 in each of pytest-xdist's
# workers when the suite runs in two processes (make test)
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))

# as inside any mmdet Runner: plugins named in configs resolve in mmdet's
# registries (a bare script calls this itself, or writes type='mmdet.ECA')
from mmdet.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _device_params():
    """``cpu`` always; ``cuda`` where torch sees a GPU, skipped (with the
    reason) where it does not."""
    reason = (f'no CUDA device here: torch {torch.__version__}, '
              f'torch.cuda.is_available() is False')
    return ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason=reason))]


@pytest.fixture(params=_device_params())
def device(request):
    """The device a device-dependent test runs on, one run per device."""
    return request.param


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory):
    """The demo Mask R-CNN trained once through ``tools/train.py`` for the
    tests that read a trained model (test, infer) or compare with an
    uninterrupted run (kill and resume): 16 generated training images, 8
    for validation, 3 epochs of 4 iterations, deterministic on one thread.
    Trained once per suite run, whichever pytest-xdist worker asks first
    (under a file lock in the workers' common temporary folder); nothing
    writes into it afterwards. Returns ``(data_root, work_dir, printed)``.
    """
    from filelock import FileLock

    from eca_mmdet.datasets import generate_dataset

    from demo_training import train_demo
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # shared by this run's workers
    root = osp.join(str(base / 'demo_shapes'), '')
    work, printed = base / 'demo_run', base / 'demo_run.out'
    with FileLock(str(base / 'demo_run.lock')):
        if not printed.is_file():
            generate_dataset(root, num_train=16, num_val=8, seed=3,
                             progress=False)
            r = train_demo(root, str(work))
            out = r.stdout + r.stderr
            assert r.returncode == 0, out[-3000:]
            printed.write_text(out)
    return root, str(work), printed.read_text()
