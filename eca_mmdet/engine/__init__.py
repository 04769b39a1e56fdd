"""Opt-in reliability for training and testing with mmengine's Runner.

Importing this package (``custom_imports=['eca_mmdet', 'eca_mmdet.engine']``;
our ``tools/train.py`` and ``tools/test.py`` do it) changes the process:

* mmengine's local file backend writes atomically (temp file, fsync,
  rename), so a killed run never leaves a truncated checkpoint;
* local checkpoints are read by :func:`~eca_mmdet.checkpoint.
  load_checkpoint_file` (allow-listed unpickling on every torch version);
* the hooks below are registered in ``mmdet.registry.HOOKS``
  (``MMCVOpsInFP32Hook`` changes mmcv's ops only while a run that lists it
  runs: see :mod:`eca_mmdet.layers.mmcv_ops_fp32`).
"""
from ..checkpoint.mmengine_scheme import register_safe_local_loader
from .atomic_backend import AtomicLocalBackend, register_atomic_backend
from .batch_size_log_hook import BatchSizeLogHook
from .epoch_seed_hook import EpochSeedHook, epoch_seed
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .image_files_check_hook import ImageFilesCheckHook, MissingImagesError
from .mmcv_ops_fp32_hook import MMCVOpsInFP32Hook
from .safe_checkpoint_hook import SafeCheckpointHook

register_atomic_backend()
register_safe_local_loader()

__all__ = ['AtomicLocalBackend', 'BatchSizeLogHook', 'EpochSeedHook',
           'epoch_seed', 'FiniteLossHook', 'NonFiniteLossError',
           'ImageFilesCheckHook', 'MissingImagesError', 'MMCVOpsInFP32Hook',
           'SafeCheckpointHook',
           'register_atomic_backend']
