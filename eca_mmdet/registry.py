"""Make our plugins resolvable with or without mmdet's default scope.

Everything is registered in ``mmdet.registry.MODELS``. mmcv builds ResNet
plugins from the registry of the *current default scope*; when no scope is
set (a bare script that never called ``register_all_modules()``), that is
mmengine's root ``MODELS``. The attention plugins are therefore also added to
the root registry, unless something else already owns the name there.
"""
from mmengine.registry import MODELS as ROOT_MODELS

from mmdet.registry import MODELS

PLUGIN_NAMES = ('ECA', 'SE', 'SEVar1', 'SEVar2', 'SEVar3', 'SEGC', 'ECANS')


def register_in_mmcv() -> None:
    """Mirror the attention plugins into mmengine's root registry."""
    for name in PLUGIN_NAMES:
        cls = MODELS.module_dict.get(name)
        if cls is not None and name not in ROOT_MODELS.module_dict:
            ROOT_MODELS.register_module(name=name, module=cls)
