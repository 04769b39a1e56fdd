"""eca-mmdet: ECA-Net (Efficient Channel Attention, CVPR 2020) for MMDetection.

Importing the package registers into ``mmdet.registry.MODELS``: the ``ECA``
plugin, the ``ECAResNet``/``ECAResNetV1d``/``ECAMobileNetV2`` backbones and the
``SE`` plugin; it also registers the ``eca://`` checkpoint scheme and the
``weights_only`` allow-list for mmengine's own checkpoints.

Use from any mmdet config::

    custom_imports = dict(imports=['eca_mmdet'], allow_failed_imports=False)
"""
from .backbones import (ECAMobileNetV2, ECAResNet, ECAResNetV1d)  # noqa
from .checkpoint.mmengine_scheme import register_schemes
from .checkpoint.safe_load import allow_mmengine_types
from .engine import (EpochSeedHook, FiniteLossHook,  # noqa
                     SafeCheckpointHook,
                     register_atomic_backend)
from .layers import ECA  # noqa
from .registry import register_in_mmcv
from .version import __version__  # noqa

allow_mmengine_types()
register_atomic_backend()
register_schemes()
register_in_mmcv()

__all__ = ['ECA', 'ECAResNet', 'ECAResNetV1d', 'ECAMobileNetV2',
           '__version__']
