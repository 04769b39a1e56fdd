"""The cache lock on file systems without locks, and transfers and waits
that end: a server that accepts and then stalls, a holder that does not let
go, with the bounds set tiny (``ECA_MMDET_DOWNLOAD_TIMEOUT``,
``ECA_MMDET_LOCK_TIMEOUT``)."""
import errno
import fcntl
import glob
import importlib.util
import os
import os.path as osp
import pwd
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from filelock import FileLock

from eca_mmdet.checkpoint import CheckpointError
from eca_mmdet.checkpoint import fetch_lock as fl
from eca_mmdet.checkpoint.sources import local_checkpoint

from helpers import ROOT
from servers import LoopbackServer, Route

REAL_FLOCK = fcntl.flock


@pytest.fixture
def caches(tmp_path, monkeypatch):
    for var, sub in (('ECA_MMDET_CHECKPOINTS', 'eca'), ('TORCH_HOME', 'th'),
                     ('HF_HOME', 'hf')):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ('ECA_MMDET_NO_DOWNLOAD', 'ECA_MMDET_LOCK_TIMEOUT',
                'ECA_MMDET_DOWNLOAD_TIMEOUT', 'HF_HUB_CACHE'):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def no_locks(monkeypatch, code):
    """``flock`` as a file system without locks answers: ENOLCK (NFS v3
    without lockd) or ENOSYS (Lustre without ``-o flock``)."""
    def flock(fd, operation):
        if operation & fcntl.LOCK_EX:
            raise OSError(code, os.strerror(code))
        return REAL_FLOCK(fd, operation)
    monkeypatch.setattr(fcntl, 'flock', flock)


def download_tool():
    spec = importlib.util.spec_from_file_location(
        'download_checkpoints',
        osp.join(ROOT, 'tools', 'download_checkpoints.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('code', [errno.ENOLCK, errno.ENOSYS],
                         ids=['ENOLCK', 'ENOSYS'])
def test_a_file_system_without_locks_is_one_line_error(caches, monkeypatch,
                                                      capsys, code):
    """No bare OSError, no silent lock file that a dead holder on another
    host would leave behind: our error, naming the directory, the variable
    that moves it and what to do; no request is made."""
    no_locks(monkeypatch, code)
    with LoopbackServer({'/w/x.pth': Route(b'never sent')}) as srv:
        with pytest.raises(CheckpointError) as e:
            local_checkpoint(srv.url('/w/x.pth'))
        message = str(e.value)
        assert '\n' not in message
        for text in (os.strerror(code), str(caches / 'th' / 'hub' /
                                            'checkpoints'),
                     'TORCH_HOME', 'local disk', 'NFS v3', 'Lustre'):
            assert text in message, (text, message)

        # the download tool: one ``error:`` line, exit status 1
        monkeypatch.setenv('ECA_MMDET_DRIVE_URL', srv.url('/uc?id={id}'))
        assert download_tool().main(['eca_resnet18_k3577']) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith('error: eca://eca_resnet18_k3577: cannot '
                                 'lock ' + str(caches / 'eca'))
        assert 'ECA_MMDET_CHECKPOINTS' in err[0] and len(err) == 2
        assert srv.requests == []
    assert not [n for n in os.listdir(caches / 'eca') if 'partial' in n]


@pytest.mark.parametrize('env', ['HF_HOME', 'HF_HUB_CACHE'])
def test_hub_lock_without_locks(caches, monkeypatch, env):
    """The hub's cache: the same error, naming HF_HUB_CACHE where it is set,
    else HF_HOME, and saying to copy the whole repository folder (its lock
    lies in .locks/); huggingface_hub is never asked to download."""
    hf = pytest.importorskip('huggingface_hub')
    from huggingface_hub import constants
    no_locks(monkeypatch, errno.ENOLCK)
    hub = str(caches / 'hub')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', hub)
    if env == 'HF_HUB_CACHE':
        monkeypatch.setenv('HF_HUB_CACHE', hub)
    calls = []

    def hf_hub_download(repo, name, local_files_only):
        calls.append(local_files_only)
        raise FileNotFoundError('not in the cache')
    monkeypatch.setattr(hf, 'hf_hub_download', hf_hub_download)
    with pytest.raises(CheckpointError) as e:
        local_checkpoint('hf-hub:timm/tiny.test_in1k')
    message = str(e.value)
    for text in (osp.join(hub, '.locks'), f'Point {env} at',
                 f'copy its whole models--timm--tiny.test_in1k folder into '
                 f'{hub} (or give the path of its model.safetensors'):
        assert text in message, (text, message)
    assert 'copy it into' not in message
    assert calls == [True]  # only the cache was looked at


def test_a_stalled_hub_transfer_is_one_line_error(caches, monkeypatch):
    """huggingface_hub (its own timeouts, HF_HUB_DOWNLOAD_TIMEOUT) gives up
    on a stalled transfer with its HTTP client's error, no OSError from
    huggingface_hub 1.0: our error, not a traceback."""
    hf = pytest.importorskip('huggingface_hub')
    from huggingface_hub import constants
    httpx = pytest.importorskip(  # its client: httpx2 from 2.0, httpx 1.x
        'httpx2' if importlib.util.find_spec('httpx2') else 'httpx')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(caches / 'hub'))

    def hf_hub_download(repo, name, local_files_only):
        if local_files_only:
            raise FileNotFoundError('not in the cache')
        raise httpx.ReadTimeout('The read operation timed out')
    monkeypatch.setattr(hf, 'hf_hub_download', hf_hub_download)
    with pytest.raises(CheckpointError, match='cannot fetch hf-hub:timm/'
                       'tiny.test_in1k .* from the Hugging Face hub: The '
                       'read operation timed out'):
        local_checkpoint('hf-hub:timm/tiny.test_in1k')


def held(path, ready, done):
    """Hold ``path``'s lock (an flock on ``<path>.lock``) in a thread, with
    a partial file of its own, until ``done`` is set."""
    def hold():
        with FileLock(path + '.lock'):
            with open(fl.partial_path(path), 'wb') as f:
                f.write(b'x' * 2**20)
            ready.set()
            done.wait(30)
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


class FakeClock:
    """fetch_lock's clock (microseconds): only its sleeps advance it, each
    first calling ``on_sleep(now)``."""

    def __init__(self, monkeypatch):
        self.now, self.on_sleep = 0., lambda now: None
        monkeypatch.setattr(fl, 'time', SimpleNamespace(
            monotonic=lambda: self.now, sleep=self.sleep, time=time.time))

    def sleep(self, seconds):
        self.on_sleep(self.now)
        self.now = round(self.now + seconds, 6)


def wait_on_held_lock(caches, monkeypatch, on_sleep=None):
    """A waiter (1 s bound, a fake clock) on a lock that a thread holds with
    a 1 MiB partial file; its error, notes, flock attempts and clock."""
    monkeypatch.setenv('ECA_MMDET_LOCK_TIMEOUT', '1')
    notes = []
    for name, value in (('LOG_EVERY', 0.4), ('log_once', notes.append),
                        ('log_for_job', notes.append)):
        monkeypatch.setattr(fl, name, value)
    clock = FakeClock(monkeypatch)
    url = 'http://127.0.0.1:9/w/entry.pth'  # never asked: the lock is held
    path = str(caches / 'th' / 'hub' / 'checkpoints' / 'entry.pth')
    ready, done = threading.Event(), threading.Event()
    holder = held(path, ready, done)
    if on_sleep:
        clock.on_sleep = lambda now: on_sleep(path, now)
    attempts = []

    def flock(fd, operation):
        attempts.append(operation)
        return REAL_FLOCK(fd, operation)
    monkeypatch.setattr(fcntl, 'flock', flock)
    try:
        with pytest.raises(CheckpointError) as e:
            local_checkpoint(url)
    finally:
        done.set()
        holder.join(10)
    message = str(e.value)
    assert '\n' not in message
    for text in (f'{url}: gave up waiting for process {os.getpid()} on',
                 'nothing new for 1 s', 'ECA_MMDET_LOCK_TIMEOUT',
                 'tools/download_checkpoints.py'):
        assert text in message, (text, message)
    return message, notes, attempts, clock.now


def test_a_waiter_says_what_it_waits_for_and_gives_up(caches, monkeypatch):
    """A holder that does not let go: the waiter notes who holds it at the
    start and every LOG_EVERY seconds, polls with backoff (0.1, 0.2, 0.4,
    then up to the bound) and ends with our error after
    ECA_MMDET_LOCK_TIMEOUT seconds without progress."""
    message, notes, attempts, now = wait_on_held_lock(caches, monkeypatch)
    assert '(1.0 MiB so far)' in message, message
    assert now == 1.
    assert len(notes) == 2, notes  # at 0 s, then the first poll after 0.4 s
    assert all('is fetching it; waiting for it' in n and
               f'process {os.getpid()} on' in n for n in notes), notes
    locks = [op for op in attempts if op & fcntl.LOCK_EX]
    assert len(locks) == 5, attempts  # at 0, 0.1, 0.3, 0.7 and 1 s


def test_a_waiter_waits_while_the_download_grows(caches, monkeypatch):
    """A slow but steady holder, still receiving after 3 times the bound:
    the waiter waits; once the partial file stops growing it gives up, the
    bound after the last growth it saw."""
    grown = []

    def grow(path, now):  # the holder receives 1 KiB during each poll
        if now < 3:
            with open(glob.glob(path + '.*.partial')[0], 'ab') as f:
                f.write(b'x' * 1024)
            grown.append(now)
    message, _, _, now = wait_on_held_lock(caches, monkeypatch, grow)
    assert grown[-1] > 2 and now > 3, (grown, now)
    assert now == 4.5  # the last growth, seen at the poll at 3.5 s, + 1 s
    assert '(1.0 MiB so far)' in message  # 1.0 + a few KiB


def test_only_stale_partials_are_removed(tmp_path):
    """Where locks are local to each host, two hosts may download at once:
    a download removes the partial files of another host only when nothing
    was written to them for the download timeout, those of this host when
    their process is gone; after a failure, only its own."""
    path = str(tmp_path / 'x.pth')
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, '-c', ''])
    dead.wait()
    names = {'fresh, other host': f'other.example.{os.getpid()}.0123abcd',
             'old, other host': f'other.example.{os.getpid()}.4567abcd',
             'dead, this host': f'{host}.{dead.pid}.89abcdef',
             'alive, this host': f'{host}.{os.getpid()}.0a1b2c3d'}
    files = {k: f'{path}.{v}.partial' for k, v in names.items()}
    for file in files.values():
        open(file, 'wb').close()
    old = time.time() - 61
    os.utime(files['old, other host'], (old, old))
    with pytest.raises(OSError, match='the transfer failed'):
        with fl.download_slot(path, 'x', 'TORCH_HOME', 60) as tmp:
            left = {k for k, f in files.items() if osp.exists(f)}
            assert left == {'fresh, other host', 'alive, this host'}, left
            for mine in (tmp, tmp + 'abcdefgh.part'):  # gdown's beside it
                open(mine, 'wb').close()
            raise OSError('the transfer failed')
    assert sorted(glob.glob(path + '.*')) == sorted(
        [files['fresh, other host'], files['alive, this host'],
         path + '.lock'])


def test_the_lock_file_is_group_writable(caches, monkeypatch):
    """mode 0o664 whatever the umask: the members of a group that shares a
    cache can all lock it; a lock file that cannot be opened names its
    owner and what to do."""
    path = str(caches / 'eca' / 'x.pth')
    umask = os.umask(0o022)
    try:
        with fl.fetch_lock(path, 'x', 'ECA_MMDET_CHECKPOINTS'):
            pass
    finally:
        os.umask(umask)
    assert os.stat(path + '.lock').st_mode & 0o777 == 0o664
    os.chmod(path + '.lock', 0o444)
    real_open = os.open

    def deny(file, flags, *args):  # as for another user (root may open it)
        if file == path + '.lock' and flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(file, flags, *args)
    monkeypatch.setattr(os, 'open', deny)
    with pytest.raises(CheckpointError) as e:
        with fl.fetch_lock(path, 'x', 'ECA_MMDET_CHECKPOINTS'):
            pass
    owner = pwd.getpwuid(os.getuid()).pw_name
    for text in (f'cannot open the lock file {path}.lock', os.strerror(
            errno.EACCES), f'belongs to {owner}', 'group-writable',
            'point ECA_MMDET_CHECKPOINTS at a cache of your own'):
        assert text in str(e.value), (text, str(e.value))


def test_a_bad_bound_is_one_line_error(caches, monkeypatch):
    monkeypatch.setenv('ECA_MMDET_LOCK_TIMEOUT', 'forever')
    with pytest.raises(CheckpointError, match="ECA_MMDET_LOCK_TIMEOUT="
                                              "'forever': give a positive"):
        local_checkpoint('https://127.0.0.1:9/w/x.pth')


@pytest.mark.parametrize('scheme,stall', [
    ('url', 'before the answer'), ('url', 'mid-file'), ('eca', 'mid-file')])
def test_a_stalled_transfer_ends_every_rank(caches, monkeypatch, scheme,
                                            stall):
    """A server that accepts and then sends nothing more: the downloader
    ends with our error after ECA_MMDET_DOWNLOAD_TIMEOUT seconds, and a
    process that waited on its lock takes it, meets the same stall and
    ends the same way; nothing is cached."""
    monkeypatch.setenv('ECA_MMDET_DOWNLOAD_TIMEOUT', '0.5')
    monkeypatch.setenv('ECA_MMDET_LOCK_TIMEOUT', '10')
    body = b'\0' * 4096
    route = Route(body, stall=stall == 'before the answer',
                  hold_after=None if stall == 'before the answer' else 1024)
    with LoopbackServer({'/w/x.pth': route, '/uc': route}) as srv:
        if scheme == 'eca':
            pytest.importorskip('gdown')
            monkeypatch.setenv('ECA_MMDET_DRIVE_URL', srv.url('/uc?id={id}'))
            spec, cache = 'eca://resnet18_k3577', caches / 'eca'
            path = '/uc'
        else:
            spec, cache = srv.url('/w/x.pth'), caches / 'th' / 'hub'
            path = '/w/x.pth'
        errors, ends = [], []

        def rank():
            try:
                local_checkpoint(spec)
            except CheckpointError as e:
                errors.append(str(e))
            ends.append(time.monotonic())
        start = time.monotonic()
        first = threading.Thread(target=rank, daemon=True)
        first.start()
        assert route.holding.wait(10)
        second = threading.Thread(target=rank, daemon=True)
        second.start()
        for thread in (first, second):
            thread.join(60)  # a bound, generous for a loaded machine
            assert not thread.is_alive(), 'a rank still waits'
        assert srv.gets(path) == 2  # each tried once, in turn
    assert len(errors) == 2, errors
    for message in errors:
        assert message.startswith('could not fetch ')
        assert 'ECA_MMDET_DOWNLOAD_TIMEOUT' in message, message
    assert max(ends) - start < 30, [t - start for t in ends]
    assert not [p for p in cache.rglob('*') if p.is_file() and
                p.suffix != '.lock'], list(cache.rglob('*'))

