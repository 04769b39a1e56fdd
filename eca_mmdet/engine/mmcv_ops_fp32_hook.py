"""Turn on :func:`~eca_mmdet.layers.mmcv_ops_fp32.mmcv_ops_in_fp32` for a
run: what ``tools/train.py --amp`` adds, and what an AMP config lists."""
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
    Process-wide while the run runs; a run that stops with an error leaves
    it on.

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
