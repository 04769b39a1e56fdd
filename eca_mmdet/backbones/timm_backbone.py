"""timm's ECA networks as MMDetection backbones.

:class:`ECATimmBackbone` builds a timm model with timm's own
``features_only`` machinery (``timm.create_model(..., features_only=True)``)
and gives it what mmdet's ``ResNet`` means by ``out_indices``,
``frozen_stages`` and ``norm_eval``. Its ImageNet weights come as any other
checkpoint here (``timm://NAME.TAG``, ``hf-hub:timm/NAME.TAG``, a local
``.safetensors`` / ``.pth``), read by the safe loader and loaded strictly:
the file must hold exactly the weights of the named architecture.

SyncBN: torch's and mmengine's ``convert_sync_batchnorm`` (``sync_bn='torch'``
in a config) turn timm's ``BatchNormAct2d`` (batch norm with its activation
inside) into a plain ``SyncBatchNorm`` that never calls the activation;
:meth:`ECATimmBackbone.add_module`, where they put the converted network
back, makes those layers timm's ``SyncBatchNormAct``, what
``timm.layers.convert_sync_batchnorm`` builds (and ``BatchNormAct2d`` again
after mmengine's ``revert_sync_batchnorm``).
"""
import functools
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.model.utils import _BatchNormXd
from mmengine.utils import digit_version
from torch.nn.modules.batchnorm import _BatchNorm

from ..checkpoint import CheckpointError, extract_state_dict
from ..checkpoint.convert import sub_state_dict
from ..checkpoint.loader import resolve_checkpoint
from ..checkpoint.safe_load import load_checkpoint_file
from ..checkpoint.sources import HF_SCHEME, TIMM_SCHEME, TIMM_WEIGHTS
from ..errors import ReadableError
from ..utils import log_once
from .pretrained_init import StrictPretrainedMixin

#: timm's ECA architectures with ImageNet weights
TIMM_ECA_MODELS: Sequence[str] = tuple(TIMM_WEIGHTS)
#: the lowest timm release we support (as in pyproject.toml)
TIMM_MIN = '1.0.30'
#: the strides of mmdet's ResNet stages, out_indices 0..3
STAGE_STRIDES = (4, 8, 16, 32)


class TimmMissingError(ReadableError, ImportError):
    """timm is not installed."""


class TimmVersionError(ReadableError, ImportError):
    """timm is older than the lowest release we support."""


class NormCfgError(ReadableError, TypeError):
    """A ``norm_cfg`` given to timm's networks, which take none."""


class SyncBNError(ReadableError, RuntimeError):
    """A SyncBN conversion that would change what the network computes."""


def _timm():
    try:
        import timm
    except ImportError as e:
        raise TimmMissingError(
            f'ECATimmBackbone needs timm (and a torchvision that matches '
            f'torch): pip install "eca-mmdet[timm]" ({e})') from None
    if digit_version(timm.__version__) < digit_version(TIMM_MIN):
        raise TimmVersionError(
            f'ECATimmBackbone needs timm >= {TIMM_MIN}, found timm '
            f'{timm.__version__} (earlier releases report wrong feature '
            f'widths or cannot map the weights): pip install '
            f'"timm>={TIMM_MIN}"')
    return timm


def _arch_of_spec(spec: str) -> Optional[str]:
    """``timm://NAME.TAG`` / ``hf-hub:timm/NAME.TAG`` -> ``NAME``."""
    for scheme in (TIMM_SCHEME, HF_SCHEME + 'timm/'):
        if spec.startswith(scheme):
            return spec[len(scheme):].split('.')[0]
    return None


def timm_state_keys(model_name: str, **kwargs) -> Dict[str, torch.Size]:
    """The state_dict keys and shapes of timm's whole ``model_name`` (what
    its checkpoints hold), built on the meta device (no memory, no time)."""
    with torch.device('meta'):
        model = _timm().create_model(model_name, pretrained=False, **kwargs)
    return {k: v.shape for k, v in model.state_dict().items()}


@MODELS.register_module()
class ECATimmBackbone(StrictPretrainedMixin, BaseModule):
    """The feature pyramid of one of timm's ECA networks.

    Args:
        model_name (str): timm's architecture, one of
            :data:`TIMM_ECA_MODELS` (another timm CNN works the same way).
        out_indices (Sequence[int]): Which of the stride 4, 8, 16 and 32
            features to return (0-3), as for mmdet's ``ResNet``. Defaults to
            ``(0, 1, 2, 3)``.
        frozen_stages (int): Stages whose parameters are frozen and whose
            normalisation layers stay in eval mode: -1 none, 0 the stem,
            ``k`` the stem and the first ``k`` stages. Defaults to -1.
        norm_eval (bool): Keep every batch-norm layer in eval mode while
            training (running statistics fixed). Defaults to True.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint='timm://NAME.TAG')`` (or ``hf-hub:timm/NAME.TAG``, a
            local ``.safetensors`` / ``.pth``; ``prefix`` for the weights
            under a key prefix), alone or in a list, loaded strictly.
        **timm_kwargs: More arguments of ``timm.create_model`` (for example
            ``drop_path_rate``).
    """

    def __init__(self,
                 model_name: str,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = True,
                 init_cfg: Optional[dict] = None,
                 **timm_kwargs):
        super().__init__(init_cfg)
        timm = _timm()
        if 'norm_cfg' in timm_kwargs:
            raise NormCfgError(
                f'ECATimmBackbone({model_name}) takes no norm_cfg (timm\'s '
                f'networks take none); for SyncBN give sync_bn=\'torch\' in '
                f'the config (mmengine converts every batch norm)')
        if not set(out_indices) <= set(range(len(STAGE_STRIDES))):
            raise ValueError(f'out_indices {tuple(out_indices)}: each must '
                             f'be 0-3 (the stride 4, 8, 16, 32 features)')
        if not -1 <= frozen_stages <= len(STAGE_STRIDES):
            raise ValueError(f'frozen_stages must be -1 to 4, got '
                             f'{frozen_stages}')
        self.model_name = model_name
        self.timm_kwargs = timm_kwargs
        self.body = timm.create_model(model_name, pretrained=False,
                                      features_only=True, **timm_kwargs)
        strides = self.body.feature_info.reduction()
        missing = [s for s in STAGE_STRIDES if s not in strides]
        if missing:
            raise ValueError(f'{model_name} has no feature of stride '
                             f'{missing} (its strides: {strides})')
        #: positions in timm's feature list of what each out_index returns
        self.features = [strides.index(STAGE_STRIDES[i])
                         for i in out_indices]
        self.out_indices = tuple(out_indices)
        self.channels = [self.body.feature_info.channels()[i]
                         for i in self.features]
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        #: timm's batch norms with the activation inside, by name in body
        self._norm_acts = tuple(
            name for name, m in self.body.named_modules()
            if isinstance(m, timm.layers.BatchNormAct2d))
        self._freeze_stages()

    def stage_of_modules(self):
        """``(stage, module)`` for each module of timm's feature net, in
        order: 0 for the stem (timm's ``stem*`` modules, or those up to the
        stride-2 feature), ``k`` for the modules up to the output of the
        ``k``-th stage."""
        emitted = 0
        for name, module in self.body.items():
            yield 0 if name.startswith('stem') else emitted, module
            emitted += name in self.body.return_layers

    def _freeze_stages(self) -> None:
        for stage, module in self.stage_of_modules():
            if stage <= self.frozen_stages:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        return tuple(features[i] for i in self.features)

    def add_module(self, name: str, module: Optional[nn.Module]) -> None:
        """``nn.Module.add_module``, through which torch's and mmengine's
        ``convert_sync_batchnorm`` and mmengine's ``revert_sync_batchnorm``
        put the converted timm network back.

        They make each batch norm a plain ``SyncBatchNorm`` (or mmengine's
        ``_BatchNormXd``); one that was timm's ``BatchNormAct2d`` keeps its
        ``drop`` and ``act`` children but no longer calls them. Its class
        becomes timm's for it again: ``SyncBatchNormAct`` or
        ``BatchNormAct2d``.

        timm's own ``timm.layers.convert_sync_batchnorm`` cannot be called
        instead: with ``sync_bn='torch'`` the Runner calls mmengine's
        converter on the whole detector, which builds the plain layers
        itself; the first code of ours that sees them is this method, as it
        puts the converted network back. The result is what timm's
        converter builds, the same class for every module, and computes
        what the unconverted network computes (tested in
        ``tests/test_sync_bn.py`` for every timm architecture we configure).

        Raises:
            SyncBNError: A ``BatchNormAct2d`` was converted to another class
                (e.g. mmcv's SyncBatchNorm, ``sync_bn='mmcv'``), which would
                drop its activation.
        """
        if name == 'body' and module is not None:
            layers = _timm().layers
            timm_class = {nn.SyncBatchNorm: layers.SyncBatchNormAct,
                          _BatchNormXd: layers.BatchNormAct2d}
            for path in getattr(self, '_norm_acts', ()):
                layer = module.get_submodule(path)
                if type(layer) in timm_class:
                    layer.__class__ = timm_class[type(layer)]
                elif not isinstance(layer, (layers.BatchNormAct2d,
                                            layers.SyncBatchNormAct)):
                    raise SyncBNError(
                        f'ECATimmBackbone({self.model_name}): body.{path} '
                        f'is timm\'s BatchNormAct2d (batch norm + '
                        f'activation); {type(layer).__module__}.'
                        f'{type(layer).__name__} would drop its activation. '
                        f'Use sync_bn=\'torch\' (or timm.layers.'
                        f'convert_sync_batchnorm) for this network.')
        super().add_module(name, module)

    def load_pretrained_cfg(self, cfg: dict) -> None:
        """Load a ``Pretrained`` init_cfg through
        :meth:`load_timm_checkpoint` (``checkpoint``, ``prefix``)."""
        self.load_timm_checkpoint(cfg['checkpoint'], cfg.get('prefix'))

    def load_timm_checkpoint(self, spec: str,
                             prefix: Optional[str] = None) -> str:
        """Load timm's weights of this architecture, strictly.

        Batch-norm counters (``num_batches_tracked``, not weights) that the
        file lacks start at zero.

        Args:
            spec (str): ``timm://NAME.TAG``, ``hf-hub:timm/NAME.TAG`` or a
                local ``.safetensors`` / ``.pth`` file.
            prefix (str, optional): Only the keys under this prefix.

        Returns:
            str: The local file read.

        Raises:
            CheckpointError: The file is not one of ``model_name``'s
                (the error names both architectures), or unreadable.
        """
        path = resolve_checkpoint(spec)
        state_dict = extract_state_dict(load_checkpoint_file(path))
        if prefix:
            state_dict = sub_state_dict(
                state_dict, prefix if prefix.endswith('.') else prefix + '.')
            if not state_dict:
                raise CheckpointError(f'{path} has no tensors under prefix '
                                      f'{prefix!r}')
        want = timm_state_keys(self.model_name, **self.timm_kwargs)
        self._check_fits(spec, state_dict, want)
        # timm's feature net keeps the modules of the whole model under
        # flattened names (stages.0 -> stages_0), in the same order
        ours = list(self.body.state_dict())
        theirs = list(want)[:len(ours)]
        for a, b in zip(ours, theirs):
            assert a.replace('_', '.') == b.replace('_', '.'), (a, b)
        zero = torch.zeros((), dtype=torch.long)
        self.body.load_state_dict(
            {a: state_dict.get(b, zero) if b.endswith('num_batches_tracked')
             else state_dict[b] for a, b in zip(ours, theirs)}, strict=True)
        log_once(f'ECATimmBackbone({self.model_name}): loaded {len(ours)} '
                 f'of the file\'s {len(state_dict)} tensors from {path}')
        return path

    def _check_fits(self, spec: str, state_dict, want) -> None:
        have = {k: v.shape for k, v in state_dict.items()}
        missing = [k for k in want if k not in have
                   and not k.endswith('num_batches_tracked')]
        unexpected = [k for k in have if k not in want]
        shapes = [f'{k}: file {tuple(have[k])}, model {tuple(want[k])}'
                  for k in want if k in have and have[k] != want[k]]
        if not (missing or unexpected or shapes):
            return
        arch = _arch_of_spec(spec) or _identify(have)
        found = (f'{arch}\'s weights' if arch else
                 'weights of no timm ECA architecture')
        detail = '; '.join(
            f'{n} {what}, e.g. {", ".join(keys[:3])}'
            for n, what, keys in ((len(missing), 'missing', missing),
                                  (len(unexpected), 'unexpected', unexpected),
                                  (len(shapes), 'of another shape', shapes))
            if keys)
        raise CheckpointError(
            f'{spec} holds {found}, not {self.model_name}\'s ({detail}). '
            f'Give model_name={arch!r} or the checkpoint of '
            f'{self.model_name} ({TIMM_SCHEME}'
            f'{TIMM_WEIGHTS.get(self.model_name, "timm/NAME.TAG")[5:]}).'
            if arch else
            f'{spec} holds {found}, not {self.model_name}\'s ({detail}).')


@functools.lru_cache(maxsize=None)
def _weight_shapes(model_name: str) -> Dict[str, torch.Size]:
    """:func:`timm_state_keys` less the batch-norm counters, built once."""
    return {k: s for k, s in timm_state_keys(model_name).items()
            if not k.endswith('num_batches_tracked')}


def _identify(have) -> Optional[str]:
    """The timm ECA architecture whose weights ``have`` are, if any."""
    have = {k: s for k, s in have.items()
            if not k.endswith('num_batches_tracked')}
    for name in TIMM_ECA_MODELS:
        if have == _weight_shapes(name):
            return name
    return None
