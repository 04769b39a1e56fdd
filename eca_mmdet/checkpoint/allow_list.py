"""What may be unpickled from a checkpoint: tensors and what mmengine writes.

The checkpoints mmengine writes during training hold, besides tensors, its
``HistoryBuffer`` (log history in ``message_hub``) and numpy arrays and
scalars. :data:`ALLOWED` is exactly that: the ``HistoryBuffer`` class and a
``getattr`` restricted to its statistics methods (never the builtin); numpy's
array, dtype and scalar reconstructors under both numpy 1 (``numpy.core``)
and numpy 2 (``numpy._core``) names; ``collections.Counter``.
:data:`TENSOR_GLOBALS` are tensors' own rebuild functions, storages and
dtypes (what ``weights_only=True`` allows itself).
"""
import codecs
import collections
import importlib
import pickle
import types
from typing import Any, Callable, Dict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


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
TENSOR_GLOBALS = {
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


class AllowListUnpickler(pickle._Unpickler):
    """An unpickler that looks up no global outside tensors' own and
    :data:`ALLOWED` (Python's "restricting globals" recipe).

    It is Python's own implementation, not the C accelerator: the C
    unpickler grows its memo table to the largest index a file names, so
    ten bytes of pickle can make it allocate and zero 16 GiB; this one keeps
    the memo in a dict.
    """

    def find_class(self, module: str, name: str) -> Any:
        key = f'{module}.{name}'
        obj = ALLOWED.get(key, TENSOR_GLOBALS.get(key))
        if obj is None:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {key}')
        return obj


# what torch.load needs of a pickle module
allow_list_pickle_module = types.SimpleNamespace(
    Unpickler=AllowListUnpickler, __name__=__name__,
    load=lambda f, **kw: AllowListUnpickler(f, **kw).load())
