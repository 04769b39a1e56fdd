"""The authors' released ImageNet ECA checkpoints and the ``eca://`` names.

``eca://resnet101_k3357`` resolves to
``$ECA_MMDET_CHECKPOINTS/eca_resnet101_k3357.pth.tar`` (default directory
``~/.cache/eca_mmdet/checkpoints``). The files are hosted on Google Drive and
Baidu only, so they cannot be fetched automatically: a missing file raises an
error that says what to download and where to put it.
"""
import os
import os.path as osp
import re
from typing import Dict, Optional, Sequence, Tuple

OFFICIAL_REPO = 'https://github.com/BangguWu/ECANet'
CACHE_ENV = 'ECA_MMDET_CHECKPOINTS'
SCHEME = 'eca://'

#: preset name -> facts from the official README (k per stage layer1..4).
RELEASED_CHECKPOINTS: Dict[str, dict] = {
    'eca_resnet18_k3577': dict(
        family='resnet', depth=18, k_size=(3, 5, 7, 7), top1=70.92),
    'eca_resnet34_k3357': dict(
        family='resnet', depth=34, k_size=(3, 3, 5, 7), top1=74.21),
    'eca_resnet50_k3557': dict(
        family='resnet', depth=50, k_size=(3, 5, 5, 7), top1=77.42),
    'eca_resnet101_k3357': dict(
        family='resnet', depth=101, k_size=(3, 3, 5, 7), top1=78.65),
    'eca_resnet152_k3357': dict(
        family='resnet', depth=152, k_size=(3, 3, 5, 7), top1=78.92),
    'eca_mobilenetv2_k13': dict(
        family='mobilenetv2', depth=None, k_size=None, top1=72.56),
}

RESNET_PRESETS = {
    name: info for name, info in RELEASED_CHECKPOINTS.items()
    if info['family'] == 'resnet'
}


def checkpoint_dir() -> str:
    """Directory that ``eca://`` names resolve into."""
    default = osp.join(osp.expanduser('~'), '.cache', 'eca_mmdet',
                       'checkpoints')
    return osp.abspath(osp.expanduser(os.environ.get(CACHE_ENV, default)))


def presets_for(depth: int, k_sizes: Sequence[int]) -> Tuple[str, ...]:
    """Released ResNet presets with this depth and these kernel sizes."""
    return tuple(name for name, info in RESNET_PRESETS.items()
                 if info['depth'] == depth
                 and tuple(info['k_size']) == tuple(k_sizes))


def presets_of_depth(depth: int) -> Tuple[str, ...]:
    """Released ResNet presets of a depth."""
    return tuple(name for name, info in RESNET_PRESETS.items()
                 if info['depth'] == depth)


def resolve_uri(uri: str) -> str:
    """Map ``eca://NAME`` to its file in :func:`checkpoint_dir`.

    ``NAME`` is a released checkpoint name with or without the ``eca_``
    prefix (``eca://resnet101_k3357``), or any plain file name inside the
    cache directory (``eca://my_ecaresnet50d.pth``). Sub-directories and
    ``..`` are refused, so a name can never point outside the directory.

    Raises:
        ValueError: The name is malformed or escapes the directory.
        FileNotFoundError: The file is not there; the message says which
            file to download from the official repository and where to put
            it.
    """
    if not uri.startswith(SCHEME):
        raise ValueError(f'not an {SCHEME} name: {uri!r}')
    name = uri[len(SCHEME):]
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.\-]*', name) or '..' in name:
        raise ValueError(
            f'invalid checkpoint name {uri!r}: use {SCHEME}<name> with a '
            f'plain file name (letters, digits, _ . -), e.g. '
            f'{SCHEME}resnet101_k3357; paths and ".." are not allowed. For a '
            f'file elsewhere give its path instead of an {SCHEME} name.')
    root = checkpoint_dir()
    preset = name if name in RELEASED_CHECKPOINTS else f'eca_{name}'
    if preset in RELEASED_CHECKPOINTS:
        candidates = [f'{preset}.pth.tar', f'{preset}.pth']
    else:
        preset = None
        candidates = [name]
    for cand in candidates:
        path = osp.join(root, cand)
        # defence in depth: the resolved file must stay inside root
        if osp.commonpath([osp.realpath(path), osp.realpath(root)]) \
                != osp.realpath(root):
            raise ValueError(f'{uri!r} resolves outside {root}')
        if osp.isfile(path):
            return path
    where = osp.join(root, candidates[0])
    if preset is not None:
        raise FileNotFoundError(
            f'ECA checkpoint {uri} not found at {where}. Download '
            f'"{preset}.pth.tar" from the official ECA-Net repository '
            f'({OFFICIAL_REPO}, links in its README: Google Drive or Baidu) '
            f'and save it as {where} (set {CACHE_ENV} to use another '
            f'directory).')
    known = ', '.join(SCHEME + n[len('eca_'):] for n in RELEASED_CHECKPOINTS)
    raise FileNotFoundError(
        f'checkpoint {uri} not found at {where}. Released names: {known}; '
        f'other files must be placed in {root} (set {CACHE_ENV} to use '
        f'another directory).')


def describe_released() -> str:
    """One line per released checkpoint, for error messages."""
    return '; '.join(
        f"{n} (k={''.join(map(str, i['k_size'])) if i['k_size'] else '1/3'})"
        for n, i in RELEASED_CHECKPOINTS.items())


def find_preset(arch: Optional[str]) -> dict:
    """Look up a ResNet preset, with a clear error for unknown names."""
    if arch not in RESNET_PRESETS:
        raise ValueError(
            f'unknown ECA-ResNet arch {arch!r}; choose one of '
            f'{sorted(RESNET_PRESETS)}')
    return RESNET_PRESETS[arch]
