"""Which process of a multi-process job speaks for it.

Our fetch code runs before mmengine's Runner exists (the tools fetch weights
at start-up) and inside it (``init_cfg``), so the rank comes from the
process group when there is one, else from the launcher's environment
(torchrun's ``RANK``, Slurm's ``SLURM_PROCID``, Open MPI's
``OMPI_COMM_WORLD_RANK``)."""
import os

from mmengine.logging import print_log

RANK_VARS = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')


def get_rank() -> int:
    """This process's rank in its job (0 outside a job)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for var in RANK_VARS:
        if os.environ.get(var, '').isdigit():
            return int(os.environ[var])
    return 0


def is_main_process() -> bool:
    """Whether this process is rank 0 of its job (True outside a job)."""
    return get_rank() == 0


def log_once(msg: str) -> None:
    """Log ``msg`` (mmengine's current logger) from rank 0 only."""
    if is_main_process():
        print_log(msg, logger='current')


def log_for_job(msg: str) -> None:
    """Log what one process says for the whole job (the one that downloads
    a file): through mmengine's logger on rank 0; printed with its rank on
    another rank, whose terminal output mmengine's logger silences."""
    rank = get_rank()
    if rank == 0:
        print_log(msg, logger='current')
    else:
        print(f'[rank {rank}] {msg}', flush=True)
