from .allow_list import allow_mmengine_types
from .convert import (
    detect_format,
    eca_kernel_sizes,
    extract_state_dict,
    to_backbone_state_dict,
)
from .errors import CheckpointError
from .file_format import check_checkpoint_file
from .loader import check_compatible, load_pretrained, resolve_checkpoint
from .safe_load import load_checkpoint_file
from .zoo import RELEASED_CHECKPOINTS, checkpoint_dir, resolve_uri

__all__ = [
    'CheckpointError', 'RELEASED_CHECKPOINTS', 'allow_mmengine_types',
    'check_checkpoint_file', 'check_compatible', 'checkpoint_dir',
    'detect_format', 'eca_kernel_sizes',
    'extract_state_dict', 'load_checkpoint_file', 'load_pretrained',
    'resolve_checkpoint', 'resolve_uri', 'to_backbone_state_dict'
]
