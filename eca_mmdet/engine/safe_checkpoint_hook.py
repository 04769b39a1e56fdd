"""A CheckpointHook that never leaves the run without a good checkpoint."""
import os
import os.path as osp
import re

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from .atomic_backend import _atomic_write, stale_temp_files


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that deletes old checkpoints last.

    mmengine removes the oldest kept checkpoint *before* writing the new
    one; killed in between (``max_keep_ckpts=1``), a run is left with no
    checkpoint to resume from. Here mmengine's hook saves as usual but
    keeps every file, and after each save (in the same hook call):

    1. the new checkpoint is already complete under its name (written to a
       temporary file, fsync'ed and renamed by :class:`AtomicLocalBackend`);
    2. ``last_checkpoint`` is rewritten atomically and fsync'ed;
    3. only then are the oldest ``epoch_N``/``iter_N`` files beyond
       ``max_keep_ckpts`` removed.

    A process killed before a rename leaves a temporary file behind; the
    next run removes such leftovers from the output directory before it
    trains. Takes exactly the arguments of ``CheckpointHook``;
    ``tools/train.py`` swaps it in for ``CheckpointHook``.
    """

    def __init__(self, *args, max_keep_ckpts: int = -1, **kwargs) -> None:
        super().__init__(*args, max_keep_ckpts=-1, **kwargs)
        self.keep = max_keep_ckpts
        self._handled = None  # the last checkpoint _after_save handled

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process() or not osp.isdir(str(self.out_dir)):
            return
        for stale in sorted(set(stale_temp_files(str(self.out_dir)) +
                                stale_temp_files(runner.work_dir))):
            runner.logger.warning(f'removing {stale}: a checkpoint write '
                                  f'interrupted by an earlier run')
            os.remove(stale)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._after_save(runner)

    def after_train_epoch(self, runner) -> None:
        super().after_train_epoch(runner)
        self._after_save(runner)

    def after_val_epoch(self, runner, metrics) -> None:
        super().after_val_epoch(runner, metrics)
        self._after_save(runner)

    def _after_save(self, runner) -> None:
        """Steps 2 and 3 above, once per new checkpoint."""
        if not is_main_process() or self.last_ckpt in (None, self._handled):
            return
        self._handled = self.last_ckpt
        _atomic_write(self.last_ckpt, osp.join(runner.work_dir,
                                               'last_checkpoint'), 'w')
        if self.keep <= 0:
            return
        pattern = re.compile(
            re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')
        step = int(pattern.match(osp.basename(self.last_ckpt)).group(1))
        older = {}
        for name in self.file_backend.list_dir_or_file(self.out_dir,
                                                       list_dir=False):
            match = pattern.match(name)
            if match and int(match.group(1)) < step:
                older[int(match.group(1))] = name
        for s in sorted(older)[:max(0, len(older) - (self.keep - 1))]:
            self.file_backend.remove(
                self.file_backend.join_path(self.out_dir, older[s]))
