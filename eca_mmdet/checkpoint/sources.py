"""Where checkpoint files come from, fetched once into a local cache.

:func:`local_checkpoint` turns a checkpoint spec into a local file:

* a path: as it is;
* ``eca://NAME``: the authors' released file in :func:`~.zoo.checkpoint_dir`,
  fetched from Google Drive with ``gdown`` on first use;
* ``hf-hub:timm/ecaresnet101d.miil_in1k`` (timm's own spelling) or
  ``timm://ecaresnet101d``: timm's ``model.safetensors`` from the Hugging
  Face hub, with ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE`` and
  ``HF_ENDPOINT`` apply);
* ``https://...`` (or ``http://``): into torch hub's checkpoint cache, as
  ``torch.hub.load_state_dict_from_url`` caches (a ``name-<sha256
  prefix>.pth`` file name is checked against its hash).

A downloaded file is written under a temporary name, checked (it must read
through :func:`~.safe_load.load_checkpoint_file`; a released file must also
have the released depth, kernel sizes and keys) and only then moved into
place, with its sha256 recorded beside it (``<file>.sha256``) and verified
whenever it is used again. One process fetches each file, the others of a
job wait for it (:mod:`.fetch_lock`, until its partial file has received
nothing new for ``$ECA_MMDET_LOCK_TIMEOUT`` seconds); only that one prints
its progress. A transfer that receives
nothing for ``$ECA_MMDET_DOWNLOAD_TIMEOUT`` seconds (default 60; the hub:
``HF_HUB_ETAG_TIMEOUT`` and ``HF_HUB_DOWNLOAD_TIMEOUT``, default 10) ends
with an error. ``ECA_MMDET_NO_DOWNLOAD=1`` turns downloading off;
``ECA_MMDET_DRIVE_URL`` (a template with ``{id}``) points ``eca://`` at a
mirror.
"""
import hashlib
import http.client
import inspect
import os
import os.path as osp
import re
import socket
import sys
import urllib.request
from typing import Callable, Optional
from urllib.parse import urlparse

import torch

from ..utils import log_for_job
from .convert import (
    blocks_per_stage,
    eca_kernel_sizes,
    format_kernels,
    resnet_depth,
    stage_kernel_sizes,
    to_backbone_state_dict,
)
from .errors import CheckpointError
from .fetch_lock import (
    CacheLockError,
    SettingError,
    download_slot,
    fetch_lock,
    seconds_from_env,
)
from .mmdet_v1 import convert_mmdet_v1
from .safe_load import load_checkpoint_file
from .zoo import (
    CACHE_ENV,
    RELEASED_CHECKPOINTS,
    SCHEME,
    cache_path,
    manual_download,
    resolve_uri,
)

NO_DOWNLOAD_ENV = 'ECA_MMDET_NO_DOWNLOAD'
DRIVE_URL_ENV = 'ECA_MMDET_DRIVE_URL'
DOWNLOAD_TIMEOUT_ENV = 'ECA_MMDET_DOWNLOAD_TIMEOUT'
DEFAULT_DOWNLOAD_TIMEOUT = 60.
DRIVE_URL = 'https://drive.google.com/uc?id={id}'
HF_SCHEME = 'hf-hub:'
TIMM_SCHEME = 'timm://'
#: timm's ECA architectures with ImageNet weights (timm 1.0.31) -> the hub
#: repository of the default tag (``ecaresnet50t`` also has a1/a2/a3_in1k)
TIMM_WEIGHTS = {name: f'timm/{name}.{tag}' for name, tag in (
    ('ecaresnetlight', 'miil_in1k'), ('ecaresnet26t', 'ra2_in1k'),
    ('ecaresnet50d', 'miil_in1k'), ('ecaresnet50d_pruned', 'miil_in1k'),
    ('ecaresnet50t', 'ra2_in1k'), ('ecaresnet101d', 'miil_in1k'),
    ('ecaresnet101d_pruned', 'miil_in1k'), ('ecaresnet269d', 'ra2_in1k'),
    ('eca_resnet33ts', 'ra2_in1k'), ('eca_resnext26ts', 'ch_in1k'),
    ('eca_halonext26ts', 'c1_in1k'), ('eca_nfnet_l0', 'ra2_in1k'),
    ('eca_nfnet_l1', 'ra2_in1k'), ('eca_nfnet_l2', 'ra3_in1k'),
    ('eca_botnext26ts_256', 'c1_in1k'))}
HF_FILE = 'model.safetensors'
URL_SCHEMES = ('http://', 'https://')


def downloads_allowed() -> bool:
    """False when ``ECA_MMDET_NO_DOWNLOAD`` is set (to anything but 0)."""
    return os.environ.get(NO_DOWNLOAD_ENV, '') in ('', '0')


def download_timeout() -> float:
    """Seconds a transfer may wait for the server (to connect, or between
    two reads): ``$ECA_MMDET_DOWNLOAD_TIMEOUT``, default 60."""
    return seconds_from_env(DOWNLOAD_TIMEOUT_ENV, DEFAULT_DOWNLOAD_TIMEOUT)


def _reason(error: BaseException) -> str:
    """The first line of ``error``, saying which setting a timeout has."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, socket.timeout) or 'timed out' in text.lower():
        text += (f'; nothing received for {download_timeout():g} s, '
                 f'{DOWNLOAD_TIMEOUT_ENV}')
    return text


def local_checkpoint(spec: str) -> str:
    """The local file for a checkpoint spec, fetched if need be.

    Args:
        spec (str): A path, ``eca://NAME``, ``hf-hub:REPO``,
            ``timm://MODEL`` or an ``http(s)://`` URL.

    Returns:
        str: A local path (for a plain path: the path, unchecked).

    Raises:
        CheckpointError: Unknown scheme, a malformed name, a failed or
            disallowed download (with what to do by hand), or a cached
            file whose sha256 changed since it was downloaded.
    """
    if not isinstance(spec, str) or not spec:
        raise CheckpointError(f'checkpoint must be a path or a name such as '
                              f'{SCHEME}resnet50_k3557, got {spec!r}')
    if spec.startswith(SCHEME):
        return _released(spec)
    if spec.startswith((HF_SCHEME, TIMM_SCHEME)):
        return _hub(spec)
    if spec.startswith(URL_SCHEMES):
        return _url(spec)
    if '://' in spec:
        raise CheckpointError(
            f'cannot load {spec!r}: unknown scheme. Give a local path, '
            f'{SCHEME}NAME, {HF_SCHEME}REPO, {TIMM_SCHEME}MODEL or an '
            f'https:// URL.')
    return spec


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_recorded(path: str) -> str:
    record = path + '.sha256'
    if osp.isfile(record):  # files saved by hand have no record
        with open(record) as f:
            want = f.read().split()[0]
        have = sha256_of(path)
        if have != want:
            raise CheckpointError(
                f'{path} changed since it was downloaded (sha256 {have}, '
                f'recorded {want} in {record}): delete both files to fetch '
                f'it again')
    return path


def _into_cache(tmp: str, path: str, check: Callable[[str], None]) -> str:
    """Check a downloaded file, record its sha256 and move it into place
    (an interrupted or failed download never takes the cache name)."""
    try:
        check(tmp)
        record = f'{tmp}.sha256'
        with open(record, 'w') as f:
            f.write(f'{sha256_of(tmp)}  {osp.basename(path)}\n')
        os.replace(record, path + '.sha256')
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, f'{tmp}.sha256'):
            if osp.exists(leftover):
                os.remove(leftover)
    return path


# -- eca:// -------------------------------------------------------------------

def check_release(path: str, preset: str) -> str:
    """A released file must read safely and have the release's depth,
    ECA kernel sizes and keys; returns what was checked."""
    info = RELEASED_CHECKPOINTS[preset]
    raw = load_checkpoint_file(path)
    if info['family'] == 'detector':
        _, config = convert_mmdet_v1(raw)  # heads, classes, depth, kernels
        return f'an MMDetection v1 detector for configs/released/{config}.py'
    state_dict, _ = to_backbone_state_dict(raw, 'official')
    kernels = eca_kernel_sizes(state_dict)
    if info['family'] == 'mobilenetv2':
        ok = bool(kernels) and set(kernels) == {'features'} and set(
            kernels['features']) <= {1, 3}
    else:
        ok = resnet_depth(state_dict) == info['depth'] and \
            stage_kernel_sizes(state_dict) == tuple(info['k_size'])
    found = (f'blocks per stage {dict(blocks_per_stage(state_dict))}, ECA '
             f'kernels {format_kernels(kernels)}')
    if not ok:
        raise CheckpointError(f'{path} is not {preset}: {found}')
    return found


def _released(spec: str) -> str:
    try:
        preset, path = cache_path(spec)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if osp.isfile(path):
        return _verify_recorded(path)
    if preset is None:
        try:
            resolve_uri(spec)
        except FileNotFoundError as e:
            raise CheckpointError(str(e)) from None
    manual = manual_download(preset, path)
    if not downloads_allowed():
        raise CheckpointError(f'{spec} is not in the cache and downloading '
                              f'is off ({NO_DOWNLOAD_ENV} is set). ' + manual)
    try:
        import gdown
    except ImportError:
        raise CheckpointError(
            f'{spec} is not in the cache; fetching it from Google Drive '
            f'needs gdown (pip install gdown, or eca-mmdet[download]). Or: '
            + manual) from None
    if 'timeout' not in inspect.signature(gdown.download).parameters:
        raise CheckpointError(
            f'{spec}: gdown {getattr(gdown, "__version__", "")} sets no '
            f'network timeout; fetching needs gdown>=6.3 (pip install -U '
            f'gdown). Or: ' + manual)
    url = os.environ.get(DRIVE_URL_ENV, DRIVE_URL).format(
        id=RELEASED_CHECKPOINTS[preset]['drive'])
    try:
        with download_slot(path, spec, CACHE_ENV,
                           download_timeout()) as tmp:
            fetched = tmp is not None  # else another process fetched it
            if fetched:
                log_for_job(f'{spec}: downloading {preset} from {url}')
                if gdown.download(url=url, output=tmp, quiet=False,
                                  timeout=download_timeout()) is None:
                    raise OSError('gdown fetched nothing')
                checked = []
                _into_cache(tmp, path,
                            lambda p: checked.append(check_release(p, preset)))
                log_for_job(f'{spec}: checked ({checked[0]}); saved {path} '
                            f'(sha256 in {path}.sha256)')
    except (CacheLockError, SettingError):
        raise
    except (OSError, CheckpointError, gdown.exceptions.DownloadError) as e:
        raise CheckpointError(
            f'could not fetch {spec} from {url} ({_reason(e)}). This happens '
            f'offline, behind a firewall or over Google Drive\'s download '
            f'quota. ' + manual) from None
    # checked and recorded just now, or by the process we waited for
    return path if fetched else _verify_recorded(path)


# -- the Hugging Face hub ----------------------------------------------------

def hub_repo(spec: str) -> str:
    """``hf-hub:timm/x.tag`` -> ``timm/x.tag``; ``timm://ecaresnet50d`` ->
    its default pretrained repository; ``timm://x.tag`` -> ``timm/x.tag``."""
    if spec.startswith(HF_SCHEME):
        repo = spec[len(HF_SCHEME):]
    else:
        name = spec[len(TIMM_SCHEME):]
        repo = TIMM_WEIGHTS.get(name) or (f'timm/{name}' if '.' in name
                                          else '')
        if not repo:
            raise CheckpointError(
                f'{spec}: give a timm model with its pretrained tag '
                f'({TIMM_SCHEME}ecaresnet50d.miil_in1k) or one of '
                f'{", ".join(TIMM_SCHEME + n for n in TIMM_WEIGHTS)}')
    if repo.count('/') != 1 or not all(repo.split('/')):
        raise CheckpointError(f'{spec}: expected {HF_SCHEME}OWNER/NAME, e.g. '
                              f'{HF_SCHEME}{TIMM_WEIGHTS["ecaresnet101d"]}')
    return repo


def _hub_file(path: str) -> str:
    """A file of the hub's cache, checked against its content address: an
    LFS file's blob is named by its sha256."""
    blob = osp.realpath(path)
    name = osp.basename(blob)
    if re.fullmatch('[0-9a-f]{64}', name) and sha256_of(blob) != name:
        raise CheckpointError(
            f'{path} changed since it was downloaded (its sha256 is not '
            f'{name}, the hash the hub gave): delete {blob} to fetch it '
            f'again')
    return path


def _hub_transport_errors() -> tuple:
    """The errors of huggingface_hub's HTTP client that are no OSErrors
    (httpx's, from huggingface_hub 1.0; requests' errors are OSErrors)."""
    return tuple(sys.modules[name].HTTPError for name in ('httpx', 'httpx2')
                 if name in sys.modules)


def _hub(spec: str) -> str:
    repo = hub_repo(spec)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        raise CheckpointError(
            f'{spec}: fetching from the Hugging Face hub needs '
            f'huggingface_hub (pip install huggingface_hub, or '
            f'eca-mmdet[download]); or download {HF_FILE} from '
            f'https://huggingface.co/{repo} and give its path') from None

    def fetch(local_only):
        return _hub_file(hf_hub_download(repo, HF_FILE,
                                         local_files_only=local_only))

    def cached():  # no request at all once the cache has the file
        try:
            return fetch(local_only=True)
        except (OSError, ValueError):
            return None
    try:
        path = cached()
        if path is None and downloads_allowed():
            # in the hub's own lock folder: its cache scan expects only
            # repository folders beside it
            entry = 'models--' + repo.replace('/', '--')
            lock = osp.join(HF_HUB_CACHE, '.locks', entry, 'eca_mmdet.lock')
            env = ('HF_HUB_CACHE' if os.environ.get('HF_HUB_CACHE')
                   else 'HF_HOME')
            copy = (f'copy its whole {entry} folder into {HF_HUB_CACHE} (or '
                    f'give the path of its {HF_FILE} as the checkpoint)')
            with fetch_lock(osp.join(HF_HUB_CACHE, entry), spec, env,
                            lock_file=lock, copy=copy):
                path = cached() or fetch(local_only=False)
        return path or fetch(local_only=True)  # offline: the hub's error
    except (CacheLockError, SettingError):
        raise
    except (OSError, ValueError, *_hub_transport_errors()) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f'cannot fetch {spec} ({HF_FILE} of {repo}) from the Hugging '
            f'Face hub: {reason}. Offline or with {NO_DOWNLOAD_ENV} / '
            f'HF_HUB_OFFLINE set, only its cache is used: fetch it ahead '
            f'with tools/download_checkpoints.py {spec} where there is '
            f'internet, or download {HF_FILE} from '
            f'https://huggingface.co/{repo} and give its path.') from None


# -- http(s) ------------------------------------------------------------------

def url_cache_path(url: str) -> str:
    """Where torch hub caches the file of ``url``."""
    name = osp.basename(urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url}: the URL names no file')
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def _url(url: str) -> str:
    path = url_cache_path(url)
    if osp.isfile(path):
        return _verify_recorded(path)
    if not downloads_allowed():
        raise CheckpointError(
            f'{url} is not in the cache and downloading is off '
            f'({NO_DOWNLOAD_ENV} is set): download it and save it as {path}')
    match = torch.hub.HASH_REGEX.search(osp.basename(path))
    try:
        with download_slot(path, url, 'TORCH_HOME',
                           download_timeout()) as tmp:
            fetched = tmp is not None  # else another process fetched it
            if fetched:
                log_for_job(f'{url}: downloading to {path}')
                download_url(url, tmp, match.group(1) if match else None)
                _into_cache(tmp, path, load_checkpoint_file)
    except (CacheLockError, SettingError):
        raise
    except (OSError, RuntimeError, ValueError,
            http.client.HTTPException) as e:
        raise CheckpointError(
            f'could not fetch {url} ({_reason(e)}): download it and give '
            f'its path, or save it as {path}') from None
    return path if fetched else _verify_recorded(path)


def download_url(url: str, dst: str, hash_prefix: Optional[str] = None):
    """Download ``url`` to ``dst`` with a progress bar, as
    ``torch.hub.download_url_to_file`` does, but with a timeout
    (:func:`download_timeout`) on connecting and on every read.

    Args:
        url (str): An ``http(s)://`` URL.
        dst (str): The file to write.
        hash_prefix (str, optional): What the file's sha256 must start with.

    Raises:
        OSError: The server failed, stalled or sent less than it announced.
        ValueError: The sha256 does not start with ``hash_prefix``.
    """
    from torch.hub import tqdm  # tqdm, or torch's stand-in without it
    request = urllib.request.Request(url, headers={'User-Agent': 'eca-mmdet'})
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(request, timeout=download_timeout()) as r, \
            open(dst, 'wb') as f:
        length = r.headers.get('Content-Length', '')
        total = int(length) if length.isdigit() else None
        with tqdm(total=total, unit='B', unit_scale=True,
                  unit_divisor=1024) as bar:
            for chunk in iter(lambda: r.read(1 << 16), b''):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    if total is not None and size != total:
        raise OSError(f'the transfer ended after {size} of {total} bytes')
    if hash_prefix and not digest.hexdigest().startswith(hash_prefix):
        raise ValueError(f'its sha256 {digest.hexdigest()} does not start '
                         f'with the hash {hash_prefix} of its name')
