"""Atomic writes for mmengine's local file backend.

mmengine writes checkpoints with ``open(path, 'wb').write(bytes)``: a run
killed during the write leaves a truncated file under the final name, and
``last_checkpoint`` is rewritten in place the same way. With this backend
every ``put``/``put_text`` goes to a temporary file in the same directory,
is fsync'ed, and is renamed over the target (atomic on POSIX), so a reader
sees either the old complete file or the new complete one. mmengine's
CheckpointHook updates ``last_checkpoint`` only after the checkpoint itself
was written, so it never points at a partial file.
"""
import glob
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio.backends import LocalBackend, register_backend

TEMP_SUFFIX = '.tmp'


def _temp_prefix(name: str) -> str:
    """Temporary files for ``name`` are ``.NAME.RANDOM.tmp``."""
    return f'.{osp.basename(name)}.'


def stale_temp_files(directory: str,
                     names=('*.pth', 'last_checkpoint')) -> list:
    """Temporary files :func:`_atomic_write` left in ``directory`` for files
    matching ``names`` when its process was killed before the rename."""
    return sorted({path for name in names for path in glob.glob(
        osp.join(directory, _temp_prefix(name) + '*' + TEMP_SUFFIX))})


def _atomic_write(data: Union[bytes, str], filepath: Union[str, Path],
                  mode: str, encoding: str = 'utf-8') -> None:
    filepath = str(filepath)
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(filepath),
                               suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, **({} if 'b' in mode else
                                    dict(encoding=encoding))) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose writes are temp-file + fsync + rename."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        _atomic_write(obj, filepath, 'wb')

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        _atomic_write(obj, filepath, 'w', encoding)


def register_atomic_backend() -> None:
    """Make :class:`AtomicLocalBackend` mmengine's ``local`` backend.

    Registered both by name and for paths without a prefix (``''``), which
    is what ``get_file_backend('/path/epoch_1.pth')`` looks up.

    mmengine caches the backends it has built in
    ``mmengine.fileio.io.backend_instances`` and has no public way to drop
    them, so cached ``LocalBackend`` instances are removed from that dict
    here: the one private mmengine attribute eca-mmdet uses.
    ``tests/test_reliability.py::test_mmengine_private_surface`` fails if
    mmengine renames it or stops using it.
    """
    from mmengine.fileio import io as mmengine_io
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    for key, inst in list(mmengine_io.backend_instances.items()):
        if type(inst) is LocalBackend:
            del mmengine_io.backend_instances[key]
