"""One download per cache entry, whatever the number of processes and hosts.

Every process of a ``tools/dist_train.sh`` job (and of a Slurm job on
several nodes sharing one cache) asks for the same weights at the same
moment. :func:`fetch_lock` lets the first one fetch: it holds an OS file
lock (``flock``, through ``filelock``) on ``<file>.lock`` while it
downloads, checks and records the file; the others wait, then find the
finished file in the cache. The kernel (or the NFS v4 / Lustre lock server)
drops the lock of a process that dies, so a killed downloader never blocks
the next run; its partial file (:func:`partial_path`, unique per host and
process) is removed by the next holder of the lock (:func:`download_slot`
does both).

A file system that cannot lock (NFS v3 without ``lockd``: ``ENOLCK``;
Lustre mounted without ``-o flock``: ``ENOSYS``) is refused with one
:class:`CacheLockError`, never replaced by a lock file whose holder could
die on another host and leave it behind. A waiting process polls with
backoff (at most every 2 s), says what it waits for (rank 0 when it starts,
every waiting rank each minute) and gives up after
``$ECA_MMDET_LOCK_TIMEOUT`` seconds (default 1800).
"""
import contextlib
import errno
import glob
import os
import os.path as osp
import re
import socket
import time
import uuid
from typing import Optional

from ..utils import log_for_job, log_once
from .errors import CheckpointError

LOCK_TIMEOUT_ENV = 'ECA_MMDET_LOCK_TIMEOUT'
DEFAULT_LOCK_TIMEOUT = 1800.
LOG_EVERY = 60.
MAX_POLL = 2.
#: what ``flock`` says on a file system that gives no locks
NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)


class CacheLockError(CheckpointError):
    """The lock of a cache entry cannot be taken: the file system gives no
    locks, or another process held it longer than the waiting bound."""


class SettingError(CheckpointError, ValueError):
    """An environment variable of the fetch code has a wrong value."""


def seconds_from_env(var: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``var``.

    Args:
        var (str): The variable's name.
        default (float): The value when ``var`` is unset or empty.

    Returns:
        float: The number of seconds.
    """
    value = os.environ.get(var, '')
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.
    if not 0 < seconds < float('inf'):
        raise SettingError(f'{var}={value!r}: give a positive number of '
                           f'seconds (default {default:g})')
    return seconds


def partial_path(path: str) -> str:
    """A temporary name beside ``path`` that no other process, on this host
    or another sharing the directory, uses."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    return (f'{path}.{socket.gethostname()}.{os.getpid()}.'
            f'{uuid.uuid4().hex[:8]}.partial')


def _partials(path: str) -> list:
    return glob.glob(glob.escape(path) + '.*.partial*')


def remove_stale_partials(path: str) -> None:
    """Remove the partial files of dead downloaders of ``path`` (call with
    :func:`fetch_lock` held: nobody else is writing one then)."""
    for leftover in _partials(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)


def _holder(path: str) -> str:
    """Who holds the lock of ``path``, as far as its partial file tells
    (``<file>.<host>.<pid>.<random>.partial``)."""
    for partial in _partials(path):
        name = re.match(r'(.+)\.(\d+)\.[0-9a-f]{8}\.partial',
                        partial[len(path) + 1:])
        with contextlib.suppress(OSError, TypeError):
            size = osp.getsize(partial) / 2**20
            return f'process {name[2]} on {name[1]} ({size:.1f} MiB so far)'
    return 'another process'


def _lock_error(lock_file: str, cache_env: str, error: OSError):
    reason = os.strerror(error.errno) if error.errno else str(error)
    directory = osp.dirname(osp.abspath(lock_file))
    if error.errno in NO_LOCKS:
        return CacheLockError(
            f'cannot lock {lock_file} ({reason}): the file system of '
            f'{directory} gives no file locks (NFS v3 without lockd, Lustre '
            f'mounted without -o flock). Point {cache_env} at a directory on '
            f'a local disk or on a file system with locks (NFS v4, Lustre '
            f'with -o flock), or fetch the file there with '
            f'tools/download_checkpoints.py and copy it into {directory}.')
    return CacheLockError(
        f'cannot create or lock {lock_file} ({reason}): make {directory} '
        f'writable, or point {cache_env} at a writable directory.')


@contextlib.contextmanager
def fetch_lock(path: str, what: str, cache_env: str,
               lock_file: Optional[str] = None):
    """Hold the lock of the cache entry ``path`` for the ``with`` block.

    Args:
        path (str): The cache file to be fetched.
        what (str): How to name it when waiting for another process.
        cache_env (str): The variable that chooses the cache directory
            (named in the error where the file system gives no locks).
        lock_file (str, optional): The lock's file. Defaults to
            ``<path>.lock``.

    Raises:
        CacheLockError: The file system gives no locks, or another process
            held the lock longer than ``$ECA_MMDET_LOCK_TIMEOUT`` seconds.
    """
    from filelock import FileLock, Timeout
    lock_file = lock_file or path + '.lock'
    bound = seconds_from_env(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    try:
        os.makedirs(osp.dirname(lock_file) or '.', exist_ok=True)
    except OSError as e:
        raise _lock_error(lock_file, cache_env, e) from None
    # fallback_to_soft=False: ENOSYS is an error, not a lock file that a
    # holder dying on another host leaves behind for good
    lock = FileLock(lock_file, fallback_to_soft=False)
    start = time.monotonic()
    next_note, delay = start, 0.05
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            pass
        except OSError as e:
            raise _lock_error(lock_file, cache_env, e) from None
        waited = time.monotonic() - start
        if waited >= bound:
            raise CacheLockError(
                f'{what}: gave up after waiting {bound:g} s for '
                f'{_holder(path)} to fetch it (lock {lock_file}). Set '
                f'{LOCK_TIMEOUT_ENV} to wait longer (now {bound:g} s), or '
                f'fetch it ahead with tools/download_checkpoints.py.')
        if time.monotonic() >= next_note:
            note = log_once if next_note == start else log_for_job
            note(f'{what}: {_holder(path)} is fetching it; waiting for it '
                 f'({waited:.0f} s of at most {bound:g} s, '
                 f'{LOCK_TIMEOUT_ENV}; lock {lock_file})')
            next_note += LOG_EVERY
        delay = min(delay * 2, MAX_POLL, start + bound - time.monotonic())
        time.sleep(max(delay, 0))
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def download_slot(path: str, what: str, cache_env: str):
    """Hold ``path``'s lock (:func:`fetch_lock`); yield None if another
    process fetched it while this one waited, else a fresh partial name to
    download to. Partial files (of dead downloaders, and this one's after a
    failure) are removed."""
    with fetch_lock(path, what, cache_env):
        if osp.isfile(path):
            yield None
            return
        remove_stale_partials(path)
        try:
            yield partial_path(path)
        finally:
            remove_stale_partials(path)
