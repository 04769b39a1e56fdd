"""eca-mmdet: ECA-Net (Efficient Channel Attention, CVPR 2020) for MMDetection.

Importing the package only registers names: the ``ECA``/``SE``/analysis
attention modules and the ``ECAResNet``/``ECAResNetV1d``/``ECAMobileNetV2``/
``ECATimmBackbone`` backbones (timm is imported only when the last is
built) in ``mmdet.registry.MODELS``, the ``FastCocoMetric`` evaluator in
``mmdet.registry.METRICS``, the ``eca://`` checkpoint scheme in
mmengine's ``CheckpointLoader``, and (torch >= 2.5) mmengine's own checkpoint
types in torch's ``weights_only`` allow-list. Use from any mmdet config::

    custom_imports = dict(imports=['eca_mmdet'], allow_failed_imports=False)

Crash-safe checkpoint writes, safe local checkpoint reads on every torch and
the training hooks are opt-in: add ``'eca_mmdet.engine'`` to the imports
(our ``tools/train.py`` and ``tools/test.py`` do).
"""
from .backbones import (
    ECAMobileNetV2,
    ECAResNet,
    ECAResNetV1d,
    ECATimmBackbone,
)
from .checkpoint.allow_list import allow_mmengine_types
from .checkpoint.mmengine_scheme import register_eca_scheme
from .evaluation import FastCocoMetric
from .layers import ECA, ECANS, SE, SEGC, SEVar1, SEVar2, SEVar3
from .version import __version__

allow_mmengine_types()
register_eca_scheme()

__all__ = ['ECA', 'ECANS', 'SE', 'SEGC', 'SEVar1', 'SEVar2', 'SEVar3',
           'ECAResNet', 'ECAResNetV1d', 'ECAMobileNetV2', 'ECATimmBackbone',
           'FastCocoMetric',
           '__version__']
