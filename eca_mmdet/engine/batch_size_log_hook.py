"""Say, as training starts, what batch the run trains with and its lr."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class BatchSizeLogHook(Hook):
    """Log one line (rank 0) at the start of training: the total batch size
    (processes x images per process), the config's ``base_batch_size`` and
    the learning rate the optimizer starts from, saying whether
    ``--auto-scale-lr`` scaled it.

    The paper's configs train 8 images per iteration at lr 0.01; 8 GPUs x 2
    images is 16 images at that lr unless ``--auto-scale-lr`` is given,
    which mmengine then scales linearly (``lr * total / base_batch_size``).
    """

    priority = 'VERY_LOW'  # after mmengine has scaled and scheduled the lr

    def before_train(self, runner) -> None:
        per_process = runner.cfg.train_dataloader.batch_size
        total = runner.world_size * per_process
        line = (f'batch: {runner.world_size} process(es) x {per_process} '
                f'images = {total} images per iteration')
        auto = runner.auto_scale_lr or {}
        base = auto.get('base_batch_size')
        line += (f'; config base_batch_size {base}' if base else
                 '; the config sets no base_batch_size')
        optimizer = getattr(runner.optim_wrapper, 'optimizer', None)
        config_lr = runner.cfg.optim_wrapper.get('optimizer', {}).get('lr')
        if optimizer is None or config_lr is None:
            return runner.logger.info(line)
        group = optimizer.param_groups[0]
        lr = group.get('initial_lr', group['lr'])  # before warm-up
        if auto.get('enable', False):
            line += (f'; lr {lr:g}: --auto-scale-lr scaled the config\'s '
                     f'{config_lr:g} by {total}/{base}')
        else:
            line += f'; lr {lr:g} as in the config, not scaled'
            if base and base != total:
                line += (f' (--auto-scale-lr would use '
                         f'{config_lr * total / base:g})')
        runner.logger.info(line)
