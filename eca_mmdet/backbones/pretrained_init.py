"""``init_cfg=dict(type='Pretrained', ...)`` for ECA backbones, strict."""
import copy

from ..checkpoint.loader import load_pretrained


class StrictPretrainedMixin:
    """Route a ``Pretrained`` init_cfg through a strict loader.

    ``init_cfg`` may take every form mmengine accepts: one dict or a list of
    dicts, ``Pretrained`` with ``checkpoint`` and optionally ``prefix``.
    Other init_cfg entries and the children's own initialisation run first
    (as in mmengine), then the checkpoint is loaded strictly by
    :meth:`load_pretrained_cfg`, so nothing is left at random init silently
    (mmengine's own ``Pretrained`` loads with ``strict=False`` and only
    warns). Mix into an mmengine ``BaseModule``.
    """

    def init_weights(self) -> None:
        cfgs = self.init_cfg
        cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs or [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained:
            return super().init_weights()
        if len(pretrained) > 1:
            raise ValueError(f'{type(self).__name__}: more than one '
                             f'Pretrained init_cfg given: {pretrained}')
        cfg = copy.deepcopy(pretrained[0])
        if 'checkpoint' not in cfg:
            raise ValueError(f"{type(self).__name__}: init_cfg {cfg} needs "
                             f"'checkpoint' (a path, or an eca://, timm:// or "
                             f"hf-hub: name)")
        original = self.init_cfg
        self.init_cfg = [c for c in cfgs
                         if c.get('type') != 'Pretrained'] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        self.load_pretrained_cfg(cfg)

    def load_pretrained_cfg(self, cfg: dict) -> None:
        """Load the checkpoint of a ``Pretrained`` init_cfg, strictly.

        Args:
            cfg (dict): The ``Pretrained`` entry: ``checkpoint``, and
                optionally ``prefix`` and ``format`` (see
                :func:`~eca_mmdet.checkpoint.loader.load_pretrained`).
        """
        load_pretrained(self, cfg['checkpoint'],
                        fmt=cfg.get('format', 'auto'),
                        prefix=cfg.get('prefix'))
