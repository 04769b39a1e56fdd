"""Our checkpoint readers in mmengine's ``CheckpointLoader``.

* ``eca://NAME``, ``hf-hub:REPO``, ``timm://MODEL`` (registered by ``import
  eca_mmdet``: new names only): fetched into their caches by
  :func:`~.sources.local_checkpoint` and read by
  :func:`~.safe_load.load_checkpoint_file`, wherever mmengine loads files
  (``load_from``, ``--resume``, ``Pretrained`` init of any module).
* Local files and ``http(s)://`` URLs (mmengine's own schemes, replaced
  only through the opt-in ``import eca_mmdet.engine``): the same, so that
  no file is unpickled without the allow-list (mmengine's http loader calls
  ``torch.load`` unrestricted on torch < 2.6).
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .safe_load import load_checkpoint_file
from .sources import HF_SCHEME, TIMM_SCHEME, URL_SCHEMES, local_checkpoint
from .zoo import SCHEME


def _load(filename, map_location=None):
    return load_checkpoint_file(local_checkpoint(filename),
                                map_location=map_location)


def register_eca_scheme() -> None:
    """Register ``eca://``, ``hf-hub:`` and ``timm://`` (idempotent)."""
    CheckpointLoader.register_scheme(
        prefixes=[SCHEME, HF_SCHEME, TIMM_SCHEME], loader=_load, force=True)


def register_safe_local_loader() -> None:
    """Read local paths and ``http(s)://`` URLs through the safe loader
    (idempotent)."""
    CheckpointLoader.register_scheme(prefixes=['', *URL_SCHEMES],
                                     loader=_load, force=True)
