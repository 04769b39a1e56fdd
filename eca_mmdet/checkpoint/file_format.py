"""What a checkpoint file is, decided from its structure before any reader
unpickles it.

``torch.load`` hands any zip that holds ``constants.pkl`` to
``torch.jit.load``, which runs the archived model's code, before it looks at
``weights_only`` or the pickle module; on torch < 2.6 it does so even with
``weights_only=True``. :func:`check_checkpoint_file` therefore reads the
file's layout itself and lets through only

* ``'zip'``: a ``torch.save`` archive (torch >= 1.6): every entry inside one
  folder, stored uncompressed, the pickle ``data.pkl``, storages
  ``data/<key>`` and torch's small metadata records, nothing else;
* ``'legacy'``: torch's pre-1.6 format (the authors' ``*.pth.tar`` files and
  MMDetection v1 detectors): five pickles, then each storage's bytes;
* ``'safetensors'``: a safetensors file (8-byte header length, JSON header).

For the two torch formats it also unpickles the object pickle with *inert*
stand-ins for the allow-listed globals (nothing from the file is called) to
check, before torch allocates anything, that every storage the pickle names
exists with exactly the bytes it claims, and that containers are not nested
deeper than :data:`MAX_DEPTH`. Anything else raises :class:`CheckpointError`
saying what the file is and what to do instead.
"""
import io
import os
import pickle
import re
import struct
import tarfile
import warnings
import zipfile
from typing import Any, Dict, Iterable, List, Tuple

import torch

from .allow_list import ALLOWED, TENSOR_GLOBALS
from .errors import CheckpointError, unsafe_file_error

#: Containers nested deeper than this are refused (real checkpoints: < 10).
MAX_DEPTH = 100
#: The first pickle of torch's legacy format.
LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
#: Small records that ``torch.save`` writes beside ``data.pkl`` (torch 1.6
#: to 2.13) and the storages ``data/<key>``.
ZIP_METADATA = frozenset({'version', '.data/version', 'byteorder',
                          '.data/serialization_id', '.format_version',
                          '.storage_alignment'})
_STORAGE_RECORD = re.compile(r'data/\d+')
#: storage key -> (bytes, bytes per element), as the pickle names them
Storages = Dict[str, Tuple[int, int]]


def _is_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b'{'


def check_checkpoint_file(path: str) -> str:
    """Check the structure of a checkpoint file before it is read.

    Args:
        path (str): An existing local file.

    Returns:
        str: ``'zip'``, ``'legacy'`` or ``'safetensors'``.

    Raises:
        CheckpointError: The file is a TorchScript archive, another kind of
            zip or tar archive, or a torch file whose pickle names storages
            it does not hold, holds code references, or nests too deeply.
    """
    with open(path, 'rb') as f:
        head = f.read(512)
    if head.startswith(b'PK\x03\x04') or head.startswith(b'PK\x05\x06'):
        _check_zip(path)
        return 'zip'
    if _is_safetensors(head):
        return 'safetensors'
    if len(head) >= 512 and _is_tar(path):
        raise CheckpointError(
            f'{path} is a tar archive (the format of torch before 0.4, or '
            f'another archive), not a checkpoint this loader reads. Unpack '
            f'or re-save it with torch.save(state_dict, "weights.pth") on a '
            f'machine where you trust the file.')
    _check_legacy(path)
    return 'legacy'


def _is_tar(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError):
        return False


# -- zip (torch >= 1.6) ------------------------------------------------------

def _check_zip(path: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            folder = _archive_folder(path, names)
            records = {n[len(folder) + 1:]: i for n, i in zip(names, infos)}
            _check_zip_records(path, records)
            compressed = [i.filename for i in infos
                          if i.compress_type != zipfile.ZIP_STORED]
            if compressed:
                raise CheckpointError(
                    f'{path} is a zip whose entries are compressed '
                    f'({", ".join(compressed[:3])}); torch.save never '
                    f'compresses them, so this file was re-packed by '
                    f'another tool. Save the weights again with torch.save.')
            pickled = zf.read(f'{folder}/data.pkl')
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError,
            ValueError, NotImplementedError, RuntimeError) as e:
        raise CheckpointError(
            f'cannot read checkpoint {path}: a damaged zip archive '
            f'({type(e).__name__}: {e}); download or save it again') from None
    _check_torch_reader_agrees(path, set(records))
    _, storages = _scan(path, io.BytesIO(pickled), legacy=False)
    for key, (nbytes, _) in storages.items():
        info = records.get(f'data/{key}')
        if info is None or info.file_size != nbytes:
            have = 'no record' if info is None else f'{info.file_size} bytes'
            raise CheckpointError(
                f'{path} is not a consistent torch.save checkpoint: its '
                f'pickle claims storage {key!r} of {nbytes} bytes, the '
                f'archive holds {have} for it; the file is corrupt or '
                f'crafted. Download or save it again.')


def _archive_folder(path: str, names: List[str]) -> str:
    folder = names[0].split('/', 1)[0] if names and '/' in names[0] else ''
    if not folder:
        raise CheckpointError(
            f'{path} is a zip archive but not a torch.save checkpoint (its '
            f'entries are not in one folder: {names[:4]}). Give a file '
            f'written by torch.save.')
    outside = [n for n in names if not n.startswith(folder + '/')
               or '\\' in n or '..' in n.split('/')]
    if outside:
        raise CheckpointError(
            f'{path} is a zip archive with entries outside its archive '
            f'folder {folder + "/"!r} (e.g. {outside[0]!r}): not a '
            f'torch.save checkpoint, which keeps every entry in one folder. '
            f'Save the weights again with torch.save.')
    if len(set(names)) != len(names):
        raise CheckpointError(f'{path} is a zip archive with duplicate '
                              f'entries: not a torch.save checkpoint')
    return folder


def _check_zip_records(path: str, records: Dict[str, Any]) -> None:
    if 'constants.pkl' in records or any(n.startswith('code/')
                                         for n in records):
        raise CheckpointError(
            f'{path} is a TorchScript archive (torch.jit.save: it holds '
            f'code/ and constants.pkl), not a torch.save checkpoint. Loading '
            f'it would run the code it contains, which eca_mmdet never does. '
            f'If you trust the file, load it yourself with torch.jit.load() '
            f'and save its weights: torch.save(torch.jit.load(path)'
            f'.state_dict(), "weights.pth").')
    other = sorted(n for n in records if n != 'data.pkl'
                   and n not in ZIP_METADATA
                   and not _STORAGE_RECORD.fullmatch(n))
    if 'data.pkl' not in records or other:
        what = (f'unexpected entries {other[:4]}' if other
                else 'no data.pkl')
        raise CheckpointError(
            f'{path} is a zip archive but not a torch.save checkpoint '
            f'({what}). Give a file written by torch.save, or save the '
            f'weights again with torch.save(state_dict, "weights.pth").')


def _check_torch_reader_agrees(path: str, records: set) -> None:
    """torch's own zip reader must list exactly the entries checked above
    (no second reading of the archive that differs from Python's)."""
    try:
        seen = set(torch._C.PyTorchFileReader(path).get_all_records())
    except (RuntimeError, UnicodeDecodeError) as e:  # names not UTF-8
        raise CheckpointError(
            f'cannot read checkpoint {path}: torch cannot open the zip '
            f'archive ({str(e).splitlines()[0]}); download or save it '
            f'again') from None
    if seen != records:
        raise CheckpointError(
            f'{path}: torch and Python read different entries from this zip '
            f'archive ({sorted(seen ^ records)[:4]}); refusing a file '
            f'crafted to look different to different readers')


# -- legacy (torch < 1.6) ---------------------------------------------------

def _check_legacy(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        try:
            magic, _ = _scan(path, f, legacy=True)
        except CheckpointError:
            magic = None
        if magic != LEGACY_MAGIC:
            raise CheckpointError(
                f'cannot read checkpoint {path}: it is not a PyTorch '
                f'checkpoint (neither a torch.save zip archive nor the '
                f'legacy format, nor safetensors); is it complete, and not '
                f'an HTML page saved by a failed download?')
        _scan(path, f, legacy=True)  # protocol version
        _scan(path, f, legacy=True)  # sys_info
        _, storages = _scan(path, f, legacy=True)
        keys, _ = _scan(path, f, legacy=True)
        if not isinstance(keys, list) or not all(isinstance(k, str)
                                                 for k in keys):
            _corrupt(path, 'the list of storage keys is malformed')
        for key in keys:
            if key not in storages:
                _corrupt(path, f'storage {key!r} is not named by the pickle')
            nbytes, element = storages.pop(key)
            header = f.read(8)
            if len(header) != 8:
                _corrupt(path, 'the file ends before its storages')
            (numel, ) = struct.unpack('<q', header)
            if numel * element != nbytes or f.tell() + nbytes > size:
                _corrupt(path, f'storage {key!r} claims {nbytes} bytes, '
                               f'{numel * element} are recorded and '
                               f'{size - f.tell()} remain in the file')
            f.seek(nbytes, os.SEEK_CUR)
        if storages:
            _corrupt(path, f'storages {sorted(storages)[:3]} are named by '
                           f'the pickle but not stored')


def _corrupt(path: str, what: str):
    raise CheckpointError(
        f'cannot read checkpoint {path}: the file is truncated, corrupt or '
        f'crafted ({what}); download or save it again')


# -- the inert scan -----------------------------------------------------------

class _Inert:
    """Stands in for an allow-listed global: calling it, building it or
    setting its state only records the arguments."""
    origin = ''

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.parts = [args, kwargs]
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.parts.append(state)

    def __setitem__(self, key, value):
        self.parts.append((key, value))

    def append(self, value):
        self.parts.append(value)

    def extend(self, values):
        self.parts.append(list(values))


class _ScanUnpickler(pickle._Unpickler):
    """Python's unpickler (a dict memo, see
    :class:`~.allow_list.AllowListUnpickler`)
    with inert globals; collects the storages the pickle names."""

    def __init__(self, file, legacy: bool):
        super().__init__(file, encoding='latin1')
        self.legacy = legacy
        self.allowed = {**TENSOR_GLOBALS, **ALLOWED}
        self.storages: Storages = {}
        self.views: List[Tuple[str, int, int]] = []

    def find_class(self, module: str, name: str) -> Any:
        key = f'{module}.{name}'
        if key not in self.allowed:
            raise pickle.UnpicklingError(f'Unsupported global: GLOBAL {key}')
        return type(key, (_Inert, ), {'origin': key})

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f'malformed persistent id {pid!r}')
        if pid[0] == 'module':
            raise pickle.UnpicklingError(
                'Unsupported global: a pickled nn.Module (torch.save(model))')
        size = 6 if self.legacy else 5
        if pid[0] != 'storage' or len(pid) != size:
            raise pickle.UnpicklingError(f'malformed persistent id {pid!r}')
        storage_type, key, _location, numel = pid[1:5]
        element = _element_size(storage_type)
        if not (isinstance(key, str) and isinstance(numel, int)
                and not isinstance(numel, bool) and numel >= 0
                and element):
            raise pickle.UnpicklingError(f'malformed storage {pid!r}')
        known = self.storages.setdefault(key, (numel * element, element))
        if known != (numel * element, element):
            raise pickle.UnpicklingError(f'storage {key!r} named with two '
                                         f'sizes')
        if self.legacy and pid[5] is not None:
            view = pid[5]
            if not (isinstance(view, tuple) and len(view) == 3 and all(
                    isinstance(v, int) and v >= 0 for v in view[1:])
                    and view[1] + view[2] <= numel):
                raise pickle.UnpicklingError(f'malformed storage view '
                                             f'{view!r}')
        return _Inert()


def _storage_element_sizes() -> Dict[str, int]:
    sizes = {'torch.UntypedStorage': 1}
    with warnings.catch_warnings():  # typed storages are deprecated
        warnings.simplefilter('ignore')
        for name in dir(torch):
            dtype = getattr(getattr(torch, name), 'dtype', None) \
                if name.endswith('Storage') else None
            if isinstance(dtype, torch.dtype):
                sizes[f'torch.{name}'] = torch.empty(
                    (), dtype=dtype).element_size()
    return sizes


#: ``torch.FloatStorage`` etc. -> bytes per element.
STORAGE_ELEMENT_SIZES = _storage_element_sizes()


def _element_size(storage_type: Any) -> int:
    return STORAGE_ELEMENT_SIZES.get(getattr(storage_type, 'origin', ''), 0)


def _scan(path: str, file, legacy: bool) -> Tuple[Any, Storages]:
    """Unpickle one pickle from ``file`` inertly and check its nesting;
    return it and the storages it names (key -> (bytes, element size))."""
    unpickler = _ScanUnpickler(file, legacy)
    obj = _run(path, unpickler)
    _check_depth(path, obj)
    return obj, unpickler.storages


def _run(path: str, unpickler: _ScanUnpickler) -> Any:
    try:
        return unpickler.load()
    except pickle.UnpicklingError as e:
        if 'Unsupported global' in str(e):
            raise unsafe_file_error(path, str(e)) from None
        _corrupt(path, str(e))
    except (EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, OverflowError, MemoryError, RecursionError,
            struct.error, UnicodeDecodeError) as e:
        _corrupt(path, f'{type(e).__name__}: {e}'[:200])


def _children(obj: Any) -> Iterable[Any]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield v
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj
    elif isinstance(obj, _Inert):
        yield from obj.parts


def _check_depth(path: str, root: Any) -> None:
    """Refuse containers nested deeper than :data:`MAX_DEPTH` (walked
    without recursion; shared and cyclic references are visited once)."""
    seen = set()
    stack = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            _corrupt(path, f'containers nested more than {MAX_DEPTH} deep')
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float)):
            continue
        seen.add(id(obj))
        stack.extend((child, depth + 1) for child in _children(obj))
