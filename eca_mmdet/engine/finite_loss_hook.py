"""Stop training at the first NaN/inf loss, naming the iteration and term."""
import math
from typing import Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..errors import ReadableError


class NonFiniteLossError(ReadableError, FloatingPointError):
    """A training loss became NaN or infinite."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when any logged loss term is not
    finite, before a checkpoint with NaN weights can be written.

    mmdet's ``CheckInvalidLossHook`` only checks the total loss every
    ``interval`` iterations with a bare assertion; this hook checks every
    term after every iteration (the values are already on the host in the
    log buffer) and says which one broke, and where.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
    """

    priority = 'VERY_HIGH'  # before CheckpointHook (NORMAL) in after_iter

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner,
                                                       self.interval):
            return
        bad = []
        for name, value in outputs.items():
            if 'loss' not in name:
                continue
            v = value.item() if isinstance(value, torch.Tensor) else value
            if isinstance(v, (int, float)) and not math.isfinite(v):
                bad.append(f'{name}={v}')
        if bad:
            raise NonFiniteLossError(
                f'training stopped at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}): non-finite loss {", ".join(bad)}. '
                f'The last good checkpoint is kept; lower the learning rate, '
                f'enable gradient clipping (optim_wrapper.clip_grad) or check '
                f'the data of this iteration, then resume with --resume.')
