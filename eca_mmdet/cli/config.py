"""The config of a tool's run, from its command line.

Checks and small adaptations applied before mmengine's Runner is built, so
that common mistakes stop at once with one readable message instead of a
traceback from deep inside mmengine."""
import contextlib
import os.path as osp
import traceback
from typing import Iterable, List, Optional, Tuple

import torch
from mmengine.config import Config

from ..errors import ReadableError

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')
# where a broken annotation file makes a run fail
DATA_MODULES = ('mmengine.dataset', 'mmdet.datasets', 'mmdet.evaluation',
                'pycocotools', 'faster_coco_eval', 'torch.utils.data')


class ConfigError(ReadableError, ValueError):
    """A config value is wrong; the message says which and how to fix it."""


class MissingFileError(ReadableError, FileNotFoundError):
    """A file named on the command line or in the config does not exist."""


class DatasetNotFoundError(MissingFileError):
    """A dataset file or folder the config points to does not exist."""


def check_file_exists(path: str, what: str) -> None:
    """Raise :class:`MissingFileError` ``'<what> not found: <path>'`` if
    ``path`` is not a file."""
    if not osp.isfile(path):
        raise MissingFileError(f'{what} not found: {path}')


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """A config as mmdet's tools build it from their command line.

    Args:
        config (str): The config file.
        cfg_options (dict, optional): ``--cfg-options``, checked for typos
            (:func:`check_cfg_options`) and merged.
        data_root (str, optional): ``--data-root`` (:func:`set_data_root`).
        work_dir (str, optional): ``--work-dir``; else the config's, else
            ``./work_dirs/<config name>``.
        launcher (str): ``--launcher``. Defaults to ``'none'``.

    Returns:
        Config: The run's config.
    """
    check_file_exists(config, 'config file')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def skip_pretrained_init(cfg: Config) -> None:
    """The run loads a trained checkpoint that holds every weight: drop the
    backbone's ImageNet ``init_cfg`` (nothing to download or look up)."""
    backbone = cfg.model.get('backbone', cfg.model)
    if backbone.get('init_cfg') is not None:
        backbone.init_cfg = None


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Catch ``--cfg-options`` typos before mmengine silently adds new keys.

    A key whose intermediate part does not exist in the config is an error;
    a new leaf is allowed (options may add arguments) unless its name is a
    near-miss of an existing sibling, which is reported with the match.
    Top-level keys that mmengine's ``Runner`` takes (``randomness``,
    ``env_cfg``, ...) may be added with their sub-keys.
    """
    import difflib
    import inspect

    from mmengine.runner import Runner
    runner_args = set(inspect.signature(Runner.__init__).parameters)
    tree = cfg.to_dict()
    for key in options:
        node, path = tree, []
        parts = key.split('.')
        if parts[0] not in tree and parts[0] in runner_args:
            continue
        for i, part in enumerate(parts):
            leaf = i == len(parts) - 1
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ConfigError(f'--cfg-options {key}: index {part} '
                                      f'out of range for {".".join(path)}')
                node, path = node[int(part)], path + [part]
                continue
            if not isinstance(node, dict):
                break  # below a non-dict value: mmengine replaces it
            if part not in node:
                close = difflib.get_close_matches(part, list(node), n=1,
                                                  cutoff=0.8)
                where = '.'.join(path) or 'the config'
                if not leaf or close:
                    hint = f'; did you mean {".".join(path + close)}?' \
                        if close else ''
                    raise ConfigError(
                        f'--cfg-options {key}: {where} has no key '
                        f'{part!r}{hint}')
                break
            node, path = node[part], path + [part]


def _innermost_dataset(ds):
    while isinstance(ds, dict) and 'dataset' in ds:  # wrappers
        ds = ds['dataset']
    return ds


def _loader_datasets(cfg: Config, loaders: Iterable[str] = DATALOADERS):
    """``(loader name, innermost dataset cfg)`` for each configured loader;
    the dataset dicts are the config's own, so changes stick."""
    for name in loaders:
        loader = cfg.get(name)
        if loader:
            yield name, _innermost_dataset(loader.get('dataset', {}))


def _dataset_paths(ds) -> List[Tuple[str, str]]:
    root = ds.get('data_root') or ''
    paths = []
    ann = ds.get('ann_file')
    if ann:
        paths.append(('annotation file', osp.join(root, ann)))
    prefix = ds.get('data_prefix') or {}
    img = prefix.get('img') if isinstance(prefix, dict) else None
    if img is not None:
        paths.append(('image folder', osp.join(root, img)))
    return paths


def check_datasets_exist(cfg: Config,
                         loaders: Iterable[str] = DATALOADERS) -> None:
    """Raise :class:`DatasetNotFoundError` if a dataset is not where the
    config says, naming the path and how to point ``data_root`` elsewhere."""
    for name, ds in _loader_datasets(cfg, loaders):
        for what, path in _dataset_paths(ds):
            if not osp.exists(path):
                root = ds.get('data_root') or '.'
                raise DatasetNotFoundError(
                    f'{name}: {what} not found: {path}\n'
                    f'  The config expects the dataset under data_root='
                    f'{root!r} (for COCO: annotations/, train2017/, '
                    f'val2017/ as MMDetection expects, see its docs).\n'
                    f'  Put it there, or point elsewhere with '
                    f'--data-root /path/to/coco/ (sets data_root of every '
                    f'dataloader and the evaluator\'s ann_file).')


def set_data_root(cfg: Config, data_root: str) -> None:
    """Re-root every dataloader and COCO evaluator at ``data_root``."""
    data_root = osp.join(data_root, '')
    old_roots = set()
    for _, ds in _loader_datasets(cfg):
        if ds.get('data_root'):
            old_roots.add(ds['data_root'])
        ds['data_root'] = data_root
    for name in EVALUATORS:
        evaluator = cfg.get(name)
        if not evaluator:
            continue
        evals = evaluator if isinstance(evaluator, list) else [evaluator]
        for ev in evals:
            ann = ev.get('ann_file')
            if ann:
                for old in old_roots:
                    if ann.startswith(old):
                        ann = ann[len(old):]
                        break
                ev['ann_file'] = osp.join(data_root, ann)


def _checkpoints_in(obj, found):
    if isinstance(obj, dict):
        if obj.get('type') == 'Pretrained' and isinstance(
                obj.get('checkpoint'), str):
            found.append(obj['checkpoint'])
        for v in obj.values():
            _checkpoints_in(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _checkpoints_in(v, found)
    return found


def fetch_checkpoints(cfg: Config) -> List[str]:
    """Fetch, check and cache the config's ``Pretrained`` checkpoints and
    ``load_from`` now (``eca://``, ``hf-hub:``, ``timm://``, ``http(s)://``;
    see :func:`~eca_mmdet.checkpoint.sources.local_checkpoint`), before
    anything else can fail; return a note for each that mmengine will fetch
    itself (``torchvision://``, ``open-mmlab://``)."""
    from ..checkpoint.sources import (
        HF_SCHEME,
        SCHEME,
        TIMM_SCHEME,
        URL_SCHEMES,
        local_checkpoint,
    )
    notes = []
    for ckpt in _checkpoints_in(cfg.get('model', {}), []) + \
            [cfg.get('load_from') or '']:
        if ckpt.startswith((SCHEME, HF_SCHEME, TIMM_SCHEME) + URL_SCHEMES):
            local_checkpoint(ckpt)
        elif '://' in ckpt:
            also = ' and torchvision' if ckpt.startswith('torchvision') \
                else ''
            notes.append(
                f'note: this config downloads {ckpt} at start-up (needs '
                f'internet{also}); offline, give a local file with '
                f'--cfg-options model.backbone.init_cfg.checkpoint=PATH')
    return notes


def setup_device(cfg: Config) -> None:
    """Use the gloo backend for distributed runs on machines without CUDA
    (see :mod:`.cpu_distributed`)."""
    if not torch.cuda.is_available():
        env = cfg.setdefault('env_cfg', {})
        env.setdefault('dist_cfg', {})['backend'] = 'gloo'
        from .cpu_distributed import setup_cpu_distributed
        setup_cpu_distributed(cfg)


def use_safe_training_hooks(cfg: Config) -> None:
    """Crash-safe, exactly resumable training and a NaN/inf loss stop.

    Replaces mmengine's ``CheckpointHook`` by :class:`SafeCheckpointHook`
    (same arguments) and adds :class:`FiniteLossHook`,
    :class:`EpochSeedHook` and :class:`ImageFilesCheckHook` unless present.
    """
    hooks = cfg.get('default_hooks') or {}
    ckpt = hooks.get('checkpoint')
    if ckpt and ckpt.get('type') in ('CheckpointHook',
                                     'mmengine.CheckpointHook'):
        ckpt['type'] = 'SafeCheckpointHook'
    add_custom_hooks(cfg, 'FiniteLossHook', 'EpochSeedHook',
                     'ImageFilesCheckHook')


def use_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Train with mmengine's ``AmpOptimWrapper`` with dynamic loss scaling
    (``loss_scale='dynamic'``, replacing the config's ``loss_scale``) and
    :class:`MMCVOpsInFP32Hook`, which runs the mmcv ops that lack the
    autocast dtype in float32: what ``--amp`` does (``tools/train.py`` also
    trains inside ``mmcv_ops_in_fp32()``, which restores the ops after an
    error).

    Args:
        cfg (Config): The training config, changed in place.
        dtype (str, optional): ``'float16'`` or ``'bfloat16'``. Defaults to
            None: the config's ``optim_wrapper.dtype``, else float16.
    """
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    if dtype is not None:
        cfg.optim_wrapper.dtype = dtype
    add_custom_hooks(cfg, 'MMCVOpsInFP32Hook')


def add_custom_hooks(cfg: Config, *types: str) -> None:
    """Append ``dict(type=T)`` to ``cfg.custom_hooks`` for each ``T`` not
    already there."""
    custom = list(cfg.get('custom_hooks') or [])
    for hook in types:
        if not any(h.get('type') == hook for h in custom):
            custom.append(dict(type=hook))
    cfg.custom_hooks = custom


def _raised_in_data_loading(error: BaseException) -> bool:
    """Whether ``error`` came from building or reading a dataset (or the
    COCO evaluator reading its annotation file)."""
    modules = [frame.f_globals.get('__name__', '')
               for frame, _ in traceback.walk_tb(error.__traceback__)]
    return any(m.startswith(DATA_MODULES) for m in modules)


@contextlib.contextmanager
def diagnose_data_errors(cfg: Config, loaders: Iterable[str] = DATALOADERS):
    """Explain a failure inside data loading by the annotation files.

    A broken COCO file makes pycocotools or mmdet fail deep inside with
    messages such as ``KeyError: 'bbox'``. An exception raised in this
    block from data-loading code (mmengine's and mmdet's datasets,
    pycocotools, torch's ``DataLoader``, mmdet's COCO metric) has the
    configured annotation files checked (:func:`diagnose_datasets`); a
    problem found there is raised as :class:`AnnotationError` chained to
    the original. Everything else propagates unchanged.

    Args:
        cfg (Config): The run's config.
        loaders (Iterable[str]): The dataloaders whose files to check.
    """
    from ..datasets import AnnotationError
    try:
        yield
    except ReadableError:
        raise
    except Exception as error:
        if _raised_in_data_loading(error):
            problem = diagnose_datasets(cfg, loaders)
            if problem:
                raise AnnotationError(problem) from error
        raise


def diagnose_datasets(cfg: Config,
                      loaders: Iterable[str] = DATALOADERS) -> Optional[str]:
    """After a dataset failed to build: what is wrong with its annotations.

    Checks each configured COCO annotation file with
    :func:`~eca_mmdet.datasets.check_coco_annotation_file`. Parses every
    file in full, so it is meant for the error path only.

    Returns:
        str or None: ``'<loader>: <problem>'`` for the first bad file, or
        None if every file looks usable.
    """
    from ..datasets import AnnotationError, check_coco_annotation_file
    for name, ds in _loader_datasets(cfg, loaders):
        ann = ds.get('ann_file')
        if not ann or not str(ann).endswith('.json'):
            continue
        classes = (ds.get('metainfo') or {}).get('classes')
        try:
            check_coco_annotation_file(
                osp.join(ds.get('data_root') or '', ann), classes)
        except AnnotationError as e:
            return f'{name}: {e}'
    return None
