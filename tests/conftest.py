import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

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
