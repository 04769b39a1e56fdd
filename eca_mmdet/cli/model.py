"""The model of a config with the weights of a checkpoint, for the tools
that run a model outside mmengine's Runner."""
from typing import Optional, Union

import torch.nn as nn
from mmengine.config import Config

from .config import check_file_exists, skip_pretrained_init


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               strict: bool = False) -> nn.Module:
    """Build ``config``'s model and load ``checkpoint`` into it.

    The backbone's ImageNet ``init_cfg`` is dropped (the checkpoint holds
    every weight); the checkpoint is read by
    :func:`~eca_mmdet.checkpoint.load_checkpoint_file` (no code runs from
    the file). A config without ``model`` is taken as a bare backbone's.

    Args:
        config (str | Config): The config file or a loaded config.
        checkpoint (str, optional): A trained checkpoint (mmengine's
            ``state_dict`` layout). Without one the weights stay at their
            random initialisation.
        device (str): Where to put the model. Defaults to ``'cpu'``.
        strict (bool): Whether every key must match, as in
            :meth:`torch.nn.Module.load_state_dict`. Defaults to False.

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` and, where the
        checkpoint has it, ``dataset_meta`` set.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_state_dict

    from ..checkpoint import extract_state_dict, load_checkpoint_file
    from ..checkpoint.convert import strip_prefix
    if not isinstance(config, Config):
        check_file_exists(config, 'config file')
        config = Config.fromfile(config)
    init_default_scope(config.get('default_scope', 'mmdet'))
    if 'model' not in config:
        config = Config(dict(model=config.to_dict()))
    skip_pretrained_init(config)
    model = MODELS.build(config.model)
    if checkpoint is not None:
        check_file_exists(checkpoint, 'checkpoint')
        raw = load_checkpoint_file(checkpoint)
        load_state_dict(model, strip_prefix(extract_state_dict(raw),
                                            'module.'),
                        strict=strict, logger='silent')
        meta = raw.get('meta') if isinstance(raw, dict) else None
        if isinstance(meta, dict) and 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    model.cfg = config
    return model.to(device).eval()
