"""A CheckpointHook that never leaves the run without a good checkpoint."""
import os
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from .atomic_backend import _atomic_write, stale_temp_files


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with a crash-safe order of work.

    mmengine deletes the oldest kept checkpoint *before* writing the new one
    and rewrites ``last_checkpoint`` in place; killed at the wrong moment
    (``max_keep_ckpts=1``), a run is left with no loadable checkpoint. Here:

    1. the new checkpoint is written to a temporary file, fsync'ed and
       renamed into place (:class:`AtomicLocalBackend`),
    2. then ``last_checkpoint`` is replaced atomically,
    3. only then is the oldest checkpoint beyond ``max_keep_ckpts`` removed.

    A process killed between 1. and 2. leaves its temporary file behind;
    the next run removes such leftovers from the output directory before it
    trains.

    Takes exactly the arguments of ``CheckpointHook``; ``tools/train.py``
    swaps it in for ``CheckpointHook`` automatically.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process() or not osp.isdir(str(self.out_dir)):
            return
        for stale in sorted(set(stale_temp_files(str(self.out_dir)) +
                                stale_temp_files(runner.work_dir))):
            runner.logger.warning(f'removing {stale}: a checkpoint write '
                                  f'interrupted by an earlier run')
            os.remove(stale)

    def _save_checkpoint_with_step(self, runner, step, meta):
        to_remove = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                to_remove = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        _atomic_write(self.last_ckpt, osp.join(runner.work_dir,
                                               'last_checkpoint'), 'w')
        if to_remove is not None:
            old = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(to_remove))
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):
                self.file_backend.rmtree(old)
