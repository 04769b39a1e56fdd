"""A readable terminal for long runs: progress bars instead of log lines.

Used by ``tools/demo.py``; not registered, so configs are unaffected.
"""
import logging

from mmengine.hooks import Hook
from mmengine.runner import Runner
from tqdm import tqdm


class QuietConsoleRunner(Runner):
    """mmengine's Runner that shows only warnings and errors on the
    terminal; its log file (``<work_dir>/<timestamp>/<timestamp>.log``)
    still receives everything at the config's ``log_level``."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:  # not FileHandler
                handler.setLevel(max(handler.level, logging.WARNING))
        return logger


class ProgressBarHook(Hook):
    """One progress bar over training (epoch, iteration, loss, time left)
    and one over each test run."""

    priority = 'LOWEST'

    def __init__(self):
        self.bar = None

    def _open(self, total, initial, desc):
        self.bar = tqdm(total=total, initial=initial, desc=desc,
                        unit='it', dynamic_ncols=True, leave=True)

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def before_train(self, runner):
        self._open(runner.max_iters, runner.iter, 'train')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = (outputs or {}).get('loss')
        epoch = f'epoch {runner.epoch + 1}/{runner.max_epochs}'
        self.bar.set_postfix_str(
            epoch if loss is None else f'{epoch}, loss {float(loss):.3f}',
            refresh=False)
        self.bar.update(1)

    def after_train(self, runner):
        self._close()

    def before_test(self, runner):
        self._open(len(runner.test_dataloader), 0, 'test')

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self.bar.update(1)

    def after_test_epoch(self, runner, metrics=None):
        self._close()
