"""One download per cache entry, whatever the number of processes and hosts.

Every process of a ``tools/dist_train.sh`` job (and of a Slurm job on
several nodes sharing one cache) asks for the same weights at the same
moment. :func:`fetch_lock` lets the first one fetch: it holds an OS file
lock (``filelock``; ``flock`` on Linux) on ``<file>.lock`` while it
downloads, checks and records the file; the others wait, then find the
finished file in the cache. The kernel drops the lock of a process that
dies, so a killed downloader never blocks the next run; its partial file
(:func:`partial_path`, unique per host and process) is removed by the next
holder of the lock (:func:`download_slot` does both). A shared cache on
several hosts needs a file system with working locks (local disks, NFS v4,
Lustre mounted with ``flock``).
"""
import contextlib
import glob
import os
import os.path as osp
import socket
import uuid

from ..utils import log_once


def partial_path(path: str) -> str:
    """A temporary name beside ``path`` that no other process, on this host
    or another sharing the directory, uses."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    return (f'{path}.{socket.gethostname()}.{os.getpid()}.'
            f'{uuid.uuid4().hex[:8]}.partial')


def remove_stale_partials(path: str) -> None:
    """Remove the partial files of dead downloaders of ``path`` (call with
    :func:`fetch_lock` held: nobody else is writing one then)."""
    for leftover in glob.glob(glob.escape(path) + '.*.partial*'):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)


@contextlib.contextmanager
def fetch_lock(path: str, what: str):
    """Hold the lock of the cache entry ``path`` for the ``with`` block.

    Args:
        path (str): The cache file to be fetched.
        what (str): How to name it when waiting for another process.
    """
    from filelock import FileLock, Timeout
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    lock = FileLock(path + '.lock')
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log_once(f'{what}: another process is fetching it; waiting for it '
                 f'(lock {lock.lock_file})')
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def download_slot(path: str, what: str):
    """Hold ``path``'s lock; yield None if another process fetched it while
    this one waited, else a fresh partial name to download to (the partial
    files of dead downloaders removed)."""
    with fetch_lock(path, what):
        if osp.isfile(path):
            yield None
        else:
            remove_stale_partials(path)
            yield partial_path(path)
