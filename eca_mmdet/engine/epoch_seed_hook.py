"""Reseed every random generator at the start of each training epoch."""
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner.utils import set_random_seed


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch``: a fixed function of the run's seed.

    Args:
        seed (int): The run's seed (``runner.seed``; with
            ``randomness.diff_rank_seed`` mmengine has already added the
            rank to it).
        epoch (int): The 0-based epoch about to start.

    Returns:
        int: A seed in ``[0, 2**32)`` (numpy's range).
    """
    return (seed * 1_000_003 + epoch * 7_919) % 2**32


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
    exactly what the uninterrupted one would have done. Ranks differ where
    ``runner.seed`` does (``randomness.diff_rank_seed``).
    """

    priority = 'VERY_HIGH'  # before anything else draws in this epoch

    def before_train_epoch(self, runner) -> None:
        # deterministic=False: leave the run's cuDNN/deterministic flags as
        # its ``randomness`` config set them.
        set_random_seed(epoch_seed(runner.seed, runner.epoch),
                        deterministic=False, diff_rank_seed=False)
