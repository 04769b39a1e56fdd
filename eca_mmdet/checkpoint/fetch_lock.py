"""One download per cache entry, whatever the number of processes and hosts.

Every process of a ``tools/dist_train.sh`` job (and of a Slurm job on
several nodes sharing one cache) asks for the same weights at the same
moment. :func:`fetch_lock` lets the first one fetch: it holds an OS file
lock (``flock``, through ``filelock``) on ``<file>.lock`` while it
downloads, checks and records the file; the others wait, then find the
finished file in the cache. The kernel (or the NFS v4 / Lustre lock server)
drops the lock of a process that dies, so a killed downloader never blocks
the next run. Its partial file (:func:`partial_path`, unique per host and
process) is removed by the next download once it is stale (its process died
on this host, or nothing was written to it for the download timeout): on a
mount whose locks are local to each host (NFS ``local_lock``, Lustre
``localflock``) two hosts may fetch at once, and neither deletes the
other's file in progress (:func:`download_slot` does both).

A file system that cannot lock (NFS v3 without ``lockd``: ``ENOLCK``;
Lustre mounted without ``-o flock``: ``ENOSYS``) is refused with one
:class:`CacheLockError`, never replaced by a lock file whose holder could
die on another host and leave it behind. A waiting process polls with
backoff (at most every 2 s), says what it waits for (rank 0 when it starts,
every waiting rank each minute) and gives up when the holder's partial
files have received nothing new for ``$ECA_MMDET_LOCK_TIMEOUT`` seconds
(default 1800): a slow but steady download is waited for to its end.
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
#: a partial file's name after ``<file>.``: host, pid (:func:`partial_path`)
PARTIAL_NAME = re.compile(r'(.+)\.(\d+)\.[0-9a-f]{8}\.partial')


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
    # ours (with gdown's ``*.part`` beside them) and, for a hub entry, the
    # hub's blobs in progress
    return (glob.glob(glob.escape(path) + '.*.partial*') +
            glob.glob(osp.join(glob.escape(path), 'blobs', '*.incomplete')))


def _received(path: str) -> int:
    """The bytes in ``path``'s partial files: what its fetchers have
    received so far."""
    size = 0
    for partial in _partials(path):
        with contextlib.suppress(OSError):
            size += osp.getsize(partial)
    return size


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        pass
    return True


def remove_stale_partials(path: str, stale_after: float) -> None:
    """Remove the partial files of ``path`` that nobody writes any more:
    those of a process of this host that is gone, and any (of any host)
    unchanged for ``stale_after`` seconds. A fresh one of another host stays:
    where the file system's locks are local to each host, that host may be
    downloading it now."""
    host, now = socket.gethostname(), time.time()
    for partial in _partials(path):
        name = PARTIAL_NAME.match(partial[len(path) + 1:])
        with contextlib.suppress(FileNotFoundError):
            if (name and name[1] == host and not _pid_alive(int(name[2]))
                    or now - osp.getmtime(partial) > stale_after):
                os.remove(partial)


def _holder(path: str) -> str:
    """Who holds the lock of ``path``, as far as its partial file tells
    (``<file>.<host>.<pid>.<random>.partial``)."""
    for partial in _partials(path):
        name = PARTIAL_NAME.match(partial[len(path) + 1:])
        with contextlib.suppress(OSError, TypeError):
            size = osp.getsize(partial) / 2**20
            return f'process {name[2]} on {name[1]} ({size:.1f} MiB so far)'
    return 'another process'


def _owner(file: str) -> str:
    uid = os.stat(file).st_uid
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f'uid {uid}'


def _lock_error(lock_file: str, cache_env: str, copy: Optional[str],
                error: OSError):
    reason = os.strerror(error.errno) if error.errno else str(error)
    directory = osp.dirname(osp.abspath(lock_file))
    if error.errno in NO_LOCKS:
        return CacheLockError(
            f'cannot lock {lock_file} ({reason}): the file system of '
            f'{directory} gives no file locks (NFS v3 without lockd, Lustre '
            f'mounted without -o flock). Point {cache_env} at a directory on '
            f'a local disk or on a file system with locks (NFS v4, Lustre '
            f'with -o flock), or fetch the file there with '
            f'tools/download_checkpoints.py and '
            f'{copy or "copy it into " + directory}.')
    if isinstance(error, PermissionError) and osp.exists(lock_file):
        with contextlib.suppress(OSError):
            return CacheLockError(
                f'cannot open the lock file {lock_file} ({reason}): it '
                f'belongs to {_owner(lock_file)}, who can make it '
                f'group-writable (chmod g+w) for a cache shared by a group; '
                f'or point {cache_env} at a cache of your own.')
    return CacheLockError(
        f'cannot create or lock {lock_file} ({reason}): make {directory} '
        f'writable, or point {cache_env} at a writable directory.')


@contextlib.contextmanager
def fetch_lock(path: str, what: str, cache_env: str,
               lock_file: Optional[str] = None, copy: Optional[str] = None):
    """Hold the lock of the cache entry ``path`` for the ``with`` block.

    Args:
        path (str): The cache entry to be fetched (a file, or the hub's
            repository folder).
        what (str): How to name it when waiting for another process.
        cache_env (str): The variable that chooses the cache directory
            (named in the error where the file system gives no locks).
        lock_file (str, optional): The lock's file. Defaults to
            ``<path>.lock``.
        copy (str, optional): How to put a file fetched elsewhere into the
            cache, where the file system gives no locks. Defaults to
            "copy it into" the lock file's directory.

    Raises:
        CacheLockError: The file system gives no locks, the lock file cannot
            be opened, or another process held the lock while its partial
            files got nothing new for ``$ECA_MMDET_LOCK_TIMEOUT`` seconds.
    """
    from filelock import FileLock, Timeout
    lock_file = lock_file or path + '.lock'
    bound = seconds_from_env(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    try:
        os.makedirs(osp.dirname(lock_file) or '.', exist_ok=True)
    except OSError as e:
        raise _lock_error(lock_file, cache_env, copy, e) from None
    # fallback_to_soft=False: ENOSYS is an error, not a lock file that a
    # holder dying on another host leaves behind for good; mode 0o664: a
    # cache shared by a group stays usable by all its members
    lock = FileLock(lock_file, mode=0o664, fallback_to_soft=False)
    start = time.monotonic()
    next_note, delay, received = start, 0.05, None
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            pass
        except OSError as e:
            raise _lock_error(lock_file, cache_env, copy, e) from None
        now, size = time.monotonic(), _received(path)
        if size != received:  # the holder made progress
            received, progress = size, now
        if now - progress >= bound:
            raise CacheLockError(
                f'{what}: gave up waiting for {_holder(path)} to fetch it: '
                f'nothing new for {bound:g} s (lock {lock_file}). Set '
                f'{LOCK_TIMEOUT_ENV} to wait longer (now {bound:g} s), or '
                f'fetch it ahead with tools/download_checkpoints.py.')
        if now >= next_note:
            note = log_once if next_note == start else log_for_job
            note(f'{what}: {_holder(path)} is fetching it; waiting for it '
                 f'({now - start:.0f} s so far; gives up after nothing new '
                 f'for {bound:g} s, {LOCK_TIMEOUT_ENV}; lock {lock_file})')
            next_note += LOG_EVERY
        delay = min(delay * 2, MAX_POLL, progress + bound - now)
        time.sleep(max(delay, 0))
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def download_slot(path: str, what: str, cache_env: str, stale_after: float):
    """Hold ``path``'s lock (:func:`fetch_lock`); yield None if another
    process fetched it while this one waited, else a fresh partial name to
    download to. Stale partial files (:func:`remove_stale_partials`, not
    written for ``stale_after`` seconds) are removed before, this one's
    after a failure."""
    with fetch_lock(path, what, cache_env):
        if osp.isfile(path):
            yield None
            return
        remove_stale_partials(path, stale_after)
        tmp = partial_path(path)
        try:
            yield tmp
        finally:  # gdown's own partial files start with tmp
            for leftover in glob.glob(glob.escape(tmp) + '*'):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)
