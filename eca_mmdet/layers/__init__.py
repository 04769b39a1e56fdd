from .eca import ECA, adaptive_kernel_size, check_kernel_size
from .gated_residual import bn_gated_residual
from .se import SE

__all__ = ['ECA', 'adaptive_kernel_size', 'check_kernel_size',
           'bn_gated_residual', 'SE']
