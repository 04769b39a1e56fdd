"""Load checkpoints safely, on every supported torch, with readable errors.

:func:`load_checkpoint_file` is the one entry point. It first checks the
file's structure (:func:`~.file_format.check_checkpoint_file`: TorchScript
and other archives are refused, storages and nesting are checked before
anything is allocated), then reads it with an allow-list that depends on
torch:

* torch >= 2.5 (``torch.serialization.add_safe_globals`` with named
  entries): ``weights_only=True`` plus :data:`~.allow_list.ALLOWED`,
  registered with torch by :func:`~.allow_list.allow_mmengine_types`
  (``import eca_mmdet`` does this, so mmengine's own loader reads its
  checkpoints under torch >= 2.6 too);
* older torch: ``torch.load`` with the restricted unpickler
  :class:`~.allow_list.AllowListUnpickler` as its ``pickle_module``; any
  global outside the allow-list stops the load before anything is called.

``.safetensors`` files are read by the ``safetensors`` package (no pickle).
"""
import os.path as osp
import pickle
import zipfile
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .allow_list import (
    HAS_NAMED_SAFE_GLOBALS,
    allow_list_pickle_module,
    allow_mmengine_types,
)
from .errors import CheckpointError, unsafe_file_error
from .file_format import check_checkpoint_file

__all__ = ['CheckpointError', 'load_checkpoint_file']

_UNSAFE = ('Weights only load failed', 'Unsupported global',
           'refusing getattr', 'reduce for unrecognized',
           'Can only create new object')


def _torch_load(path: str, map_location: Any) -> Any:
    if HAS_NAMED_SAFE_GLOBALS:
        allow_mmengine_types()
        return torch.load(path, map_location=map_location, weights_only=True)
    # torch < 2.5: weights_only cannot take mmengine's types; the unpickler
    # itself is restricted to tensors' globals and the same allow-list
    return torch.load(path, map_location=map_location,
                      pickle_module=allow_list_pickle_module,
                      weights_only=False)


def _load_safetensors(path: str, map_location: Any) -> Any:
    device = map_location if isinstance(map_location, (str, torch.device)) \
        else 'cpu'
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f'cannot read checkpoint {path}: not a valid safetensors file '
            f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
            f'); download or save it again') from None


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint file without running code from it.

    Args:
        path (str): A local checkpoint file: ``torch.save`` output (zip or
            legacy format) or ``.safetensors``.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        CheckpointError: The file is missing, empty, truncated, not a
            checkpoint (a TorchScript model, another archive), or would
            need unsafe unpickling.
    """
    if not osp.exists(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint path is a directory, expected '
                              f'a file: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file is empty (0 bytes): {path}; '
                              f'download or save it again')
    if check_checkpoint_file(path) == 'safetensors':
        return _load_safetensors(path, map_location)
    try:
        return _torch_load(path, map_location)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if any(s in msg for s in _UNSAFE):
            detail = msg.split('WeightsUnpickler error:')[-1].strip()
            raise unsafe_file_error(path, detail.split('\n')[0]) from None
        raise CheckpointError(
            f'cannot read checkpoint {path}: not a valid PyTorch checkpoint '
            f'({msg}); is it complete and in torch.save format?') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f'cannot read checkpoint {path}: the file is truncated, corrupt '
            f'or not a PyTorch checkpoint ({type(e).__name__}: '
            f'{str(e).splitlines()[0] if str(e) else ""}); download or save '
            f'it again') from None
