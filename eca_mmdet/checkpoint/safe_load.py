"""Load checkpoints safely, on every supported torch, with readable errors.

The checkpoints mmengine writes during training hold, besides tensors, its
``HistoryBuffer`` (log history in ``message_hub``) and numpy arrays and
scalars. No file is ever unpickled without an allow-list; which one depends
on torch:

* torch >= 2.5 (``torch.serialization.add_safe_globals`` with named
  entries): ``weights_only=True`` plus :data:`ALLOWED`, registered with
  torch by :func:`allow_mmengine_types` (``import eca_mmdet`` does this, so
  mmengine's own loader reads its checkpoints under torch >= 2.6 too);
* older torch: every file through a restricted ``pickle.Unpickler``
  (:class:`AllowListUnpickler`, passed to ``torch.load`` as its
  ``pickle_module``) whose only globals are tensors' own rebuild functions
  and storages (what ``weights_only=True`` allows) and :data:`ALLOWED`; any
  other global in the file stops the load before anything is called.

:data:`ALLOWED` is exactly what mmengine writes besides tensors: the
``HistoryBuffer`` class and a ``getattr`` restricted to its statistics
methods (never the builtin); numpy's array, dtype and scalar reconstructors
under both numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) names;
``collections.Counter``. :func:`load_checkpoint_file` is the one entry point.
"""
import codecs
import collections
import importlib
import os.path as osp
import pickle
import types
import zipfile
from typing import Any, Callable, Dict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, unsafe or does not fit."""


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to what mmengine pickles: HistoryBuffer's
    statistics methods."""
    allowed = {'min', 'max', 'current', 'mean'} | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}): only '
        f'HistoryBuffer.{{{", ".join(sorted(allowed))}}} may be looked up '
        f'while loading a checkpoint')


def _numpy_multiarray() -> types.ModuleType:
    """numpy's ``multiarray`` module under the installed numpy's name."""
    major = int(np.__version__.split('.')[0])
    return importlib.import_module(
        'numpy._core.multiarray' if major >= 2 else 'numpy.core.multiarray')


def _allowed_globals() -> Dict[str, Callable]:
    multiarray = _numpy_multiarray()
    allowed = {
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'collections.Counter': collections.Counter,
        'builtins.getattr': _history_buffer_getattr,
        '__builtin__.getattr': _history_buffer_getattr,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
    }
    for package in ('numpy.core', 'numpy._core'):  # numpy 1 and 2 names
        allowed[f'{package}.multiarray._reconstruct'] = \
            multiarray._reconstruct
        allowed[f'{package}.multiarray.scalar'] = multiarray.scalar
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    for name in dir(dtypes) if dtypes is not None else ():
        if name.endswith('DType'):
            allowed[f'numpy.dtypes.{name}'] = getattr(dtypes, name)
    return allowed


#: Globals, besides tensors, that mmengine's training checkpoints need.
ALLOWED = _allowed_globals()

#: Tensors and their containers, for :class:`AllowListUnpickler` (what
#: ``weights_only=True`` allows itself; storages are resolved by torch).
_TENSOR_GLOBALS = {
    'collections.OrderedDict': collections.OrderedDict,
    '_codecs.encode': codecs.encode,  # bytes in protocol-2 pickles
    'torch.Size': torch.Size,
    'torch.device': torch.device,
    **{f'torch._utils.{name}': getattr(torch._utils, name)
       for name in ('_rebuild_tensor', '_rebuild_tensor_v2',
                    '_rebuild_parameter', '_rebuild_parameter_with_state')
       if hasattr(torch._utils, name)},
    **{f'torch.{name}': getattr(torch, name) for name in dir(torch)
       if name.endswith('Storage')
       or isinstance(getattr(torch, name, None), torch.dtype)},
}

HAS_NAMED_SAFE_GLOBALS = hasattr(torch.serialization, 'safe_globals')
_registered = False


def allow_mmengine_types() -> None:
    """Allow-list :data:`ALLOWED` for ``weights_only`` loading where torch
    has named safe globals (torch >= 2.5); a no-op before (idempotent)."""
    global _registered
    if HAS_NAMED_SAFE_GLOBALS and not _registered:
        torch.serialization.add_safe_globals(
            [(obj, name) for name, obj in ALLOWED.items()])
        _registered = True


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that looks up no global outside tensors' own and
    :data:`ALLOWED` (Python's "restricting globals" recipe)."""

    def find_class(self, module: str, name: str) -> Any:
        key = f'{module}.{name}'
        obj = ALLOWED.get(key, _TENSOR_GLOBALS.get(key))
        if obj is None:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {key}')
        return obj


# what torch.load needs of a pickle module
_allow_list_pickle = types.SimpleNamespace(
    Unpickler=AllowListUnpickler, __name__=__name__,
    load=lambda f, **kw: AllowListUnpickler(f, **kw).load())


def _torch_load(path: str, map_location: Any) -> Any:
    if HAS_NAMED_SAFE_GLOBALS:
        allow_mmengine_types()
        return torch.load(path, map_location=map_location, weights_only=True)
    # torch < 2.5: weights_only cannot take mmengine's types; the unpickler
    # itself is restricted to tensors' globals and the same allow-list
    return torch.load(path, map_location=map_location,
                      pickle_module=_allow_list_pickle, weights_only=False)


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
    if not osp.exists(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint path is a directory, expected '
                              f'a file: {path}')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file is empty (0 bytes): {path}; '
                              f'download or save it again')
    try:
        return _torch_load(path, map_location)
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
