from .atomic_backend import AtomicLocalBackend, register_atomic_backend
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['AtomicLocalBackend', 'FiniteLossHook', 'NonFiniteLossError',
           'SafeCheckpointHook', 'register_atomic_backend']
