from .atomic_backend import AtomicLocalBackend, register_atomic_backend
from .epoch_seed_hook import EpochSeedHook, epoch_seed
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['AtomicLocalBackend', 'EpochSeedHook', 'epoch_seed', 'FiniteLossHook', 'NonFiniteLossError',
           'SafeCheckpointHook', 'register_atomic_backend']
