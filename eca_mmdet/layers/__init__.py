from .eca import ECA, adaptive_kernel_size, check_kernel_size
from .gated_residual import bn_gated_residual
from .se import SE
from .se_variants import ECANS, SEGC, ChannelGate, SEVar1, SEVar2, SEVar3

__all__ = ['ECA', 'ECANS', 'SE', 'SEGC', 'SEVar1', 'SEVar2', 'SEVar3',
           'ChannelGate', 'adaptive_kernel_size', 'bn_gated_residual',
           'check_kernel_size']
