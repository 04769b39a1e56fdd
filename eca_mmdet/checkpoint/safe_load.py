"""Load checkpoints with ``weights_only=True`` and a minimal allow-list.

torch >= 2.6 refuses, by default, to unpickle anything but tensors and
containers. The ImageNet ECA files load like that, but the checkpoints that
mmengine writes during training also hold its ``HistoryBuffer`` (log history
in ``message_hub``) and numpy arrays/scalars, so ``--resume`` and testing a
trained model fail on torch 2.13. Setting ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
would let any file run code on load, so instead :func:`allow_mmengine_types`
allow-lists exactly the types mmengine writes:

* ``mmengine.logging.HistoryBuffer`` and the getattr that pickle uses to
  store its statistics methods -- a getattr restricted to
  ``HistoryBuffer.<statistic>``, never the builtin;
* numpy arrays, dtypes and scalars (``_reconstruct``, ``ndarray``, ``dtype``,
  ``scalar`` and the ``numpy.dtypes`` classes);
* ``collections.Counter``.

:func:`load_checkpoint_file` is the one entry point for reading a file; it
turns every failure into an error that says what is wrong with the file.
"""
import collections
import os.path as osp
import pickle
import zipfile
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit."""


_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to what mmengine pickles: HistoryBuffer's
    statistics methods."""
    allowed = set(_HISTORY_BUFFER_STATISTICS) | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}): only '
        f'HistoryBuffer.{{{", ".join(sorted(allowed))}}} may be looked up '
        f'while loading a checkpoint')


def _numpy_globals() -> list:
    core = getattr(np, '_core', None) or np.core
    items = [core.multiarray._reconstruct, core.multiarray.scalar,
             np.ndarray, np.dtype]
    # checkpoints written under numpy 1.x name the module numpy.core
    items += [(core.multiarray._reconstruct,
               'numpy.core.multiarray._reconstruct'),
              (core.multiarray.scalar, 'numpy.core.multiarray.scalar')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [getattr(dtypes, n) for n in dir(dtypes)
                  if n.endswith('DType')]
    return items


_ALLOWED = [HistoryBuffer, collections.Counter,
            (_history_buffer_getattr, 'builtins.getattr'),
            (_history_buffer_getattr, '__builtin__.getattr')] + \
    _numpy_globals()
_registered = False


def allow_mmengine_types() -> None:
    """Allow-list, for ``weights_only`` loading, the non-tensor types that
    mmengine writes into training checkpoints (idempotent)."""
    global _registered
    if not _registered:
        torch.serialization.add_safe_globals(_ALLOWED)
        _registered = True


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with readable errors.

    Args:
        path (str): A local checkpoint file.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        CheckpointError: The file is missing, empty, truncated, not a
            checkpoint, or would need unsafe unpickling.
    """
    allow_mmengine_types()
    if not osp.exists(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint path is a directory, expected '
                              f'a file: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file is empty (0 bytes): {path}; '
                              f'download or save it again')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if 'Weights only load failed' in msg or 'Unsupported global' in msg \
                or 'refusing getattr' in msg or 'reduce for unrecognized' \
                in msg or 'Can only create new object' in msg:
            detail = msg.split('WeightsUnpickler error:')[-1].strip()
            detail = detail.split('\n')[0]
            raise CheckpointError(
                f'refusing to load {path}: unpickling it would need objects '
                f'that are not tensors or types mmengine writes ({detail}). '
                f'Loading it could run code from the file; convert it to a '
                f'plain state_dict of tensors on a machine where you trust '
                f'the file.') from None
        raise CheckpointError(
            f'cannot read checkpoint {path}: not a valid PyTorch checkpoint '
            f'({msg}); is it complete and in torch.save format?') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, IndexError) as e:
        raise CheckpointError(
            f'cannot read checkpoint {path}: the file is truncated, corrupt '
            f'or not a PyTorch checkpoint ({type(e).__name__}: '
            f'{str(e).splitlines()[0] if str(e) else ""}); download or save '
            f'it again') from None
