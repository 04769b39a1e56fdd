from .channel_attention import ChannelAttention
from .eca import ECA, adaptive_kernel_size, check_kernel_size
from .gated_residual import GatedResidual, gated_residual
from .se import SE
from .se_variants import ECANS, SEGC, SEVar1, SEVar2, SEVar3

__all__ = ['ECA', 'ECANS', 'SE', 'SEGC', 'SEVar1', 'SEVar2', 'SEVar3',
           'ChannelAttention', 'GatedResidual', 'adaptive_kernel_size',
           'check_kernel_size', 'gated_residual']
