"""The authors' released ECA checkpoints and the ``eca://`` names.

``eca://resnet101_k3357`` resolves to
``$ECA_MMDET_CHECKPOINTS/eca_resnet101_k3357.pth.tar`` (default directory
``~/.cache/eca_mmdet/checkpoints``); the detectors, MMDetection v1 files, to
``<name>.pth`` there. The files are hosted on Google Drive and Baidu;
:mod:`.sources` fetches a missing one from Drive on first use.
"""
import os
import os.path as osp
import re
from typing import Dict, Optional, Sequence, Tuple

OFFICIAL_REPO = 'https://github.com/BangguWu/ECANet'
CACHE_ENV = 'ECA_MMDET_CHECKPOINTS'
SCHEME = 'eca://'


def _release(family, depth, k_size, top1, drive, baidu, code):
    return dict(family=family, depth=depth, k_size=k_size, top1=top1,
                drive=drive, baidu=f'https://pan.baidu.com/s/{baidu}',
                baidu_code=code)


#: file name (without extension) -> facts from the authors' README: ECA k
#: per stage (layer1..4) for ImageNet ResNets, Google Drive id, Baidu link
#: and its extraction code. ``family='detector'``: MMDetection v1 files.
RELEASED_CHECKPOINTS: Dict[str, dict] = {
    'eca_resnet18_k3577': _release(
        'resnet', 18, (3, 5, 7, 7), 70.92,
        '1LMRFRTyzVifGBi2MUpTuYEWW44S8mwyl', '1Bh9J7VY2tYj5oEvEEqvdhQ',
        'utsy'),
    'eca_resnet34_k3357': _release(
        'resnet', 34, (3, 3, 5, 7), 74.21,
        '15LV5Jkea3GPzvLP5__H7Gg88oNQUxBDE', '1FFVUBbbJfNNFhyiZZ2P2AQ',
        'o4dh'),
    'eca_resnet50_k3557': _release(
        'resnet', 50, (3, 5, 5, 7), 77.42,
        '1670rce333c_lyMWFzBlNZoVUvtxbCF_U', '18LXDcxy8qG66h-7FlWW4SA',
        'no6u'),
    'eca_resnet101_k3357': _release(
        'resnet', 101, (3, 3, 5, 7), 78.65,
        '1b5FQ8yDFnZ_UhvWT9txmjI_LjbKkgnvC', '1-ageRP2tku-YSIOqU09WpA',
        'iov1'),
    'eca_resnet152_k3357': _release(
        'resnet', 152, (3, 3, 5, 7), 78.92,
        '1_bYnaOg9ptsILC_iC7uQ5Izv-u2rjYG5', '1tPxHAltlcpI93CXUkW9ZOQ',
        'xaft'),
    'eca_mobilenetv2_k13': _release(
        'mobilenetv2', None, None, 72.56,
        '1FxzeXPg1SJQZzVVH4HRjMeq_SVMfidUm', '143B03YTGE2ogkPoCj3IorQ',
        'atpt'),
    'faster_rcnn_ecanet50_k5_bs8_lr0.01': _release(
        'detector', 50, (5, 5, 5, 5), None,
        '1myjDQIHRiYdTXm7DJjlFe_oyALhHXkrS', '16mjevcCIG7dPWlmrqRNYEQ',
        'divf'),
    'faster_rcnn_ecanet101_3357_bs8_lr0.01': _release(
        'detector', 101, (3, 3, 5, 7), None,
        '1otCeuTSs4DRLTBIO6cYjm7e-5dQK1dMX', '1Ag96zDW7R0PVVZsNaJ9XCQ',
        'd3kd'),
    'mask_rcnn_ecanet50_k3377_bs8_lr0.01': _release(
        'detector', 50, (3, 3, 7, 7), None,
        '1z5sAqOD6zZzoVOyAd2VmBztmMXUKy-Nv', '1h_2PgK4PMHa2nTIqU3ZNkQ',
        'xe19'),
    'mask_rcnn_ecanet101_k3357_bs8_lr0.01': _release(
        'detector', 101, (3, 3, 5, 7), None,
        '1Rv-VjdfWOt5mE45M0lihgv59fqnCAHQq', '19gph8Sr5nv11_kCecEyu5w',
        'y5e9'),
    'RetinaNet_ecanet50_k3377_bs8_lr0.01': _release(
        'detector', 50, (3, 3, 7, 7), None,
        '1Pp6gndZFiZZo2BdbVmzUKQUtQ1m4kIbW', '1uL-EwILJVeW7O2O3oBmO0A',
        'my44'),
    'RetinaNet_ecanet101_k3357_bs8_lr0.01': _release(
        'detector', 101, (3, 3, 5, 7), None,
        '1290duDtOGMpp3QrL47CRAq24oGPgbtct', '1Rt3ijSItumSlqHFjS4J51w',
        '2eu5'),
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


def cache_path(uri: str) -> Tuple[Optional[str], str]:
    """``eca://NAME`` -> ``(released name or None, file path)``: where the
    file is, or where it goes when fetched (the first candidate).

    ``NAME`` is a released file name with or without the ``eca_`` prefix
    (``eca://resnet101_k3357``, ``eca://faster_rcnn_ecanet50_k5_bs8_lr0.01``),
    or any plain file name inside the cache directory
    (``eca://my_ecaresnet50d.pth``). Sub-directories and ``..`` are refused,
    so a name can never point outside the directory.

    Raises:
        ValueError: The name is malformed or escapes the directory.
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
    if preset not in RELEASED_CHECKPOINTS:
        preset, candidates = None, [name]
    elif RELEASED_CHECKPOINTS[preset]['family'] == 'detector':
        candidates = [f'{preset}.pth']
    else:
        candidates = [f'{preset}.pth.tar', f'{preset}.pth']
    paths = [osp.join(root, cand) for cand in candidates]
    for path in paths:
        # defence in depth: the resolved file must stay inside root
        if osp.commonpath([osp.realpath(path), osp.realpath(root)]) \
                != osp.realpath(root):
            raise ValueError(f'{uri!r} resolves outside {root}')
    return preset, next((p for p in paths if osp.isfile(p)), paths[0])


def manual_download(preset: str, path: str) -> str:
    """Where to get a released file by hand and where to save it."""
    info = RELEASED_CHECKPOINTS[preset]
    return (f'Download "{preset}" from Google Drive (https://drive.google.'
            f'com/file/d/{info["drive"]}/view) or Baidu ({info["baidu"]}, '
            f'extraction code {info["baidu_code"]}), as linked from '
            f'{OFFICIAL_REPO}, and save it as {path} (set {CACHE_ENV} to use '
            f'another directory).')


def resolve_uri(uri: str) -> str:
    """The local file of ``eca://NAME`` (see :func:`cache_path`).

    Raises:
        ValueError: The name is malformed or escapes the directory.
        FileNotFoundError: The file is not there; the message says where to
            download it and where to save it.
    """
    preset, path = cache_path(uri)
    if osp.isfile(path):
        return path
    if preset is not None:
        raise FileNotFoundError(f'ECA checkpoint {uri} not found at {path}. '
                                + manual_download(preset, path))
    known = ', '.join(SCHEME + n[len('eca_'):] if n.startswith('eca_')
                      else SCHEME + n for n in RELEASED_CHECKPOINTS)
    raise FileNotFoundError(
        f'checkpoint {uri} not found at {path}. Released names: {known}; '
        f'other files must be placed in {checkpoint_dir()} (set {CACHE_ENV} '
        f'to use another directory).')


def find_preset(arch: Optional[str]) -> dict:
    """Look up a ResNet preset, with a clear error for unknown names."""
    if arch not in RESNET_PRESETS:
        raise ValueError(
            f'unknown ECA-ResNet arch {arch!r}; choose one of '
            f'{sorted(RESNET_PRESETS)}')
    return RESNET_PRESETS[arch]
