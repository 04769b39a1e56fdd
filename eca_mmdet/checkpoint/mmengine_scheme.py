"""Hook our safe loading into mmengine's ``CheckpointLoader``.

* ``eca://NAME`` becomes a checkpoint scheme everywhere mmengine loads
  files (``load_from``, ``--resume``, ``Pretrained`` init of any module).
* Local files (mmengine's default scheme) are read by
  :func:`load_checkpoint_file`: ``weights_only=True`` stated explicitly, the
  mmengine allow-list, and a readable error for a bad file.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_load import load_checkpoint_file
from .zoo import SCHEME, resolve_uri


def _load_local(filename, map_location=None):
    return load_checkpoint_file(filename, map_location=map_location)


def _load_eca(filename, map_location=None):
    return load_checkpoint_file(resolve_uri(filename),
                                map_location=map_location)


def register_schemes() -> None:
    """Register the loaders above with mmengine (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local,
                                     force=True)
    CheckpointLoader.register_scheme(prefixes=SCHEME, loader=_load_eca,
                                     force=True)
