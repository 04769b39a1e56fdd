"""Say, as training starts, what batch the run trains with and its lr."""
from typing import List

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


def lr_multipliers(runner) -> List[str]:
    """The lr multipliers of the config's ``optim_wrapper.paramwise_cfg``
    (``custom_keys`` ``lr_mult``, ``bias_lr_mult``, ``dcn_offset_lr_mult``)
    other than 1, as ``'backbone x0.1'``; a custom key that names no
    trainable parameter of the model is marked as such.

    Args:
        runner (Runner): The runner, with its model built.

    Returns:
        list[str]: One entry per multiplier, in the config's order.
    """
    paramwise = runner.cfg.optim_wrapper.get('paramwise_cfg') or {}
    model = getattr(runner.model, 'module', runner.model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    found = []
    for key, opts in (paramwise.get('custom_keys') or {}).items():
        mult = opts.get('lr_mult', 1.)
        if mult != 1:
            unused = not any(key in name for name in names)
            found.append(f'{key} x{mult:g}' +
                         (' (no trainable parameter matches)' if unused
                          else ''))
    for what in ('bias', 'dcn_offset'):
        mult = paramwise.get(f'{what}_lr_mult', 1.)
        if mult != 1:
            found.append(f'{what} x{mult:g}')
    return found


@HOOKS.register_module()
class BatchSizeLogHook(Hook):
    """Log one line (rank 0) at the start of training: the images per
    optimizer step (processes x images per process x
    ``optim_wrapper.accumulative_counts``), the config's ``base_batch_size``,
    the config's lr and what ``--auto-scale-lr`` made of it, and the
    ``paramwise_cfg`` lr multipliers.

    The paper's configs train 8 images per iteration at lr 0.01; 8 GPUs x 2
    images is 16 images at that lr unless ``--auto-scale-lr`` is given,
    which mmengine then scales linearly (``lr * total / base_batch_size``).
    mmengine's ``total`` is processes x images per process: it ignores
    gradient accumulation, and when a run accumulates the line says so and
    gives the lr the linear rule implies for the images per optimizer step.
    """

    priority = 'VERY_LOW'  # after mmengine has scaled and scheduled the lr

    def before_train(self, runner) -> None:
        per_process = runner.cfg.train_dataloader.batch_size
        per_iter = runner.world_size * per_process  # what mmengine scales by
        accumulate = runner.cfg.optim_wrapper.get('accumulative_counts', 1)
        line = f'batch: {runner.world_size} process(es) x {per_process} images'
        if accumulate > 1:
            line += (f' x {accumulate} accumulated iterations = '
                     f'{per_iter * accumulate} images per optimizer step')
        else:
            line += f' = {per_iter} images per iteration'
        auto = runner.auto_scale_lr or {}
        base = auto.get('base_batch_size')
        line += (f'; config base_batch_size {base}' if base else
                 '; the config sets no base_batch_size')
        config_lr = runner.cfg.optim_wrapper.get('optimizer', {}).get('lr')
        if config_lr is not None:
            if auto.get('enable', False):
                line += (f'; lr {config_lr * per_iter / base:g}: '
                         f'--auto-scale-lr scaled the config\'s '
                         f'{config_lr:g} by {per_iter}/{base}')
            else:
                line += f'; lr {config_lr:g} as in the config, not scaled'
                if base and base != per_iter:
                    line += (f' (--auto-scale-lr would use '
                             f'{config_lr * per_iter / base:g})')
            if base and accumulate > 1:
                per_step = per_iter * accumulate
                line += (f'; --auto-scale-lr counts the {per_iter} images '
                         f'per iteration, not per optimizer step (mmengine '
                         f'ignores accumulative_counts {accumulate}; the '
                         f'linear rule for the {per_step} images per '
                         f'optimizer step gives '
                         f'{config_lr * per_step / base:g})')
        multipliers = lr_multipliers(runner)
        if multipliers:
            line += '; lr multipliers: ' + ', '.join(multipliers)
        runner.logger.info(line)
