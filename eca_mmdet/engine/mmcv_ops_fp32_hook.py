"""Turn on :func:`~eca_mmdet.layers.mmcv_ops_fp32.mmcv_ops_in_fp32` for a
run: what an AMP config lists (``tools/train.py --amp`` lists it too, and
also runs training inside the context manager)."""
from contextlib import ExitStack

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ..layers.mmcv_ops_fp32 import mmcv_ops_in_fp32


@HOOKS.register_module()
class MMCVOpsInFP32Hook(Hook):
    """Run mmcv's RoIAlign, sigmoid focal loss, deformable attention and
    NMS in float32 from ``before_run`` to ``after_run``, so that mixed
    precision in bfloat16 (which mmcv 2.1's kernels lack) or float16 reaches
    them in float32 while everything else runs in the low precision.

    Process-wide while the run runs. Where the replacement is already in
    place (inside ``mmcv_ops_in_fp32()``, as ``tools/train.py`` runs with
    ``--amp``) the hook does nothing and restores nothing. mmengine 0.10.7
    calls no hook when a run stops with an error, so such a run leaves the
    ops replaced: in a process that goes on after a failed run (a notebook,
    a sweep), wrap ``runner.train()`` in ``with mmcv_ops_in_fp32():``, which
    restores them however the block ends.

    Example (a config trained by mmdet's or our ``tools/train.py``)::

        custom_imports = dict(imports=['eca_mmdet', 'eca_mmdet.engine'])
        optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
        custom_hooks = [dict(type='MMCVOpsInFP32Hook')]
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._stack = ExitStack()

    def before_run(self, runner) -> None:
        self._stack.enter_context(mmcv_ops_in_fp32())

    def after_run(self, runner) -> None:
        self._stack.close()
