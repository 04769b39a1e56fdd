"""Our checkpoint readers in mmengine's ``CheckpointLoader``.

* ``eca://NAME`` (registered by ``import eca_mmdet``): a released ECA file in
  ``$ECA_MMDET_CHECKPOINTS``, wherever mmengine loads files (``load_from``,
  ``--resume``, ``Pretrained`` init of any module).
* Local files (mmengine's default scheme; opt-in through
  ``import eca_mmdet.engine``): :func:`load_checkpoint_file`, safe on every
  supported torch and with a readable error for a bad file.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_load import load_checkpoint_file
from .zoo import SCHEME, resolve_uri


def _load_local(filename, map_location=None):
    return load_checkpoint_file(filename, map_location=map_location)


def _load_eca(filename, map_location=None):
    return load_checkpoint_file(resolve_uri(filename),
                                map_location=map_location)


def register_eca_scheme() -> None:
    """Register ``eca://`` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes=SCHEME, loader=_load_eca,
                                     force=True)


def register_safe_local_loader() -> None:
    """Read local paths with :func:`load_checkpoint_file` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local,
                                     force=True)
