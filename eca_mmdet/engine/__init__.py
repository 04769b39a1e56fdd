from .atomic_backend import AtomicLocalBackend, register_atomic_backend
from .epoch_seed_hook import EpochSeedHook, epoch_seed
from .image_files_check_hook import (ImageFilesCheckHook,
                                     MissingImagesError)
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['AtomicLocalBackend', 'EpochSeedHook', 'epoch_seed', 'FiniteLossHook', 'NonFiniteLossError',
           'ImageFilesCheckHook', 'MissingImagesError', 'SafeCheckpointHook', 'register_atomic_backend']
