"""Distributed training on machines without CUDA (gloo backend).

mmengine 0.10.7 assumes GPUs on the ``pytorch`` launcher path: it calls
``torch.cuda.set_device`` before creating the process group and wraps the
model in DDP with ``device_ids=[LOCAL_RANK]``; both fail with a CPU-only
torch. Here the process group is created with gloo before the Runner is built
(mmengine then skips its own initialisation) and the model is wrapped by
:class:`MMCPUDistributedDataParallel`, which drops ``device_ids``.
"""
import gc
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .config import ConfigError


@MODEL_WRAPPERS.register_module()
class MMCPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for CPU modules (no ``device_ids``)."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def setup_cpu_distributed(cfg) -> None:
    """On a CPU-only machine under torchrun: init gloo, use the CPU wrapper.

    Does nothing with CUDA available or when not launched distributed.
    """
    if torch.cuda.is_available() or cfg.get('launcher', 'none') == 'none':
        return
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'launcher {cfg.launcher!r} needs GPUs; on a CPU '
                          f'machine use tools/dist_train.sh (torchrun)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMCPUDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    os.environ.setdefault('LOCAL_RANK', '0')


def teardown_distributed(sync: bool = True) -> None:
    """Destroy the default process group, if any, before the process exits.

    Leaving a gloo group to the interpreter's shutdown lets its worker
    threads be destroyed while still joinable, which aborts the process
    (``terminate called without an active exception``, SIGABRT) after
    training has already finished; so does a group that a finished
    runner's model wrapper still holds when the interpreter exits.

    Args:
        sync (bool): Wait for every rank first (a barrier), so no rank tears
            the group down while another still uses it. Pass False on an
            error path, where the other ranks may never reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        # the finished runner's DDP wrapper (kept by reference cycles until
        # a collection) holds the group: free it now, so that destroying
        # the group joins gloo's threads here, not at interpreter shutdown
        gc.collect()
        if sync:
            dist.barrier()
        dist.destroy_process_group()
