"""Reseed every random generator at the start of each training epoch."""
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner.utils import set_random_seed


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of ``epoch``: a fixed function of the run's seed (and rank).

    Args:
        seed (int): The run's seed (``runner.seed``).
        epoch (int): The 0-based epoch about to start.
        rank (int): Process rank, when ranks must differ. Defaults to 0.

    Returns:
        int: A seed in ``[0, 2**32)`` (numpy's range).
    """
    return (seed * 1_000_003 + epoch * 7_919 + rank) % 2**32


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Make each epoch's randomness depend only on (seed, epoch).

    mmengine seeds ``random``, numpy and torch once, when the Runner is
    built. Everything random after that (augmentation such as
    ``RandomFlip``, the RPN/RoI samplers' ``torch.randperm``, the data
    loader's worker seeds) draws from generators whose state depends on all
    the work done before, validation included. A run resumed from the
    checkpoint of epoch ``e`` starts from freshly seeded generators and so
    draws different numbers than the uninterrupted run did: the loss curve
    does not continue where it stopped. mmengine's ``DefaultSampler``
    already shuffles with ``seed + epoch``; this hook does the same for the
    global generators in ``before_train_epoch``, so a resumed run replays
    exactly what the uninterrupted one would have done.

    Args:
        diff_rank_seed (bool, optional): Give each rank its own seeds. Defaults
            to the runner's ``randomness.diff_rank_seed``.
    """

    priority = 'VERY_HIGH'  # before anything else draws in this epoch

    def __init__(self, diff_rank_seed=None) -> None:
        self.diff_rank_seed = diff_rank_seed

    def before_train_epoch(self, runner) -> None:
        diff = self.diff_rank_seed
        if diff is None:
            diff = bool(getattr(runner, '_randomness_cfg',
                                {}).get('diff_rank_seed', False))
        seed = epoch_seed(runner.seed, runner.epoch,
                          get_rank() if diff else 0)
        # deterministic=False: leave the run's cuDNN/deterministic flags as
        # its ``randomness`` config set them.
        set_random_seed(seed, deterministic=False, diff_rank_seed=False)
