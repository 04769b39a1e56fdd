"""What ``tools/train.py``, ``tools/test.py`` and ``tools/demo.py`` share:
the common arguments and the run / explain-failure / tear-down around
mmengine's Runner."""
import argparse
import os
import sys
from typing import Any, Callable, Iterable, Tuple

from mmengine.config import Config, DictAction

from .config import DATALOADERS


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The arguments every tool takes after its positional ones, as in
    mmdet's tools, plus ``--data-root``."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--data-root',
        help='dataset root (sets data_root of every dataloader and the '
        'evaluators\' ann_file)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value (as in mmdet)')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args(parser: argparse.ArgumentParser, argv=None):
    """Parse ``argv`` and export ``LOCAL_RANK`` as mmdet's tools do."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(cfg: Config, runner_cls=None):
    """The config's ``runner_type`` if set, else ``runner_cls`` (default:
    mmengine's Runner) built from the config."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return (runner_cls or Runner).from_cfg(cfg)


def run(build_cfg: Callable[[], Config], job: Callable[[Any], Any],
        loaders: Iterable[str] = DATALOADERS,
        runner_cls=None) -> Tuple[int, Any]:
    """Build the config and a runner, then return ``(0, job(runner))``;
    failures as in :func:`guarded`.

    Args:
        build_cfg (callable): Returns the run's config.
        job (callable): Takes the runner, e.g. ``lambda r: r.train()``.
        loaders (Iterable[str]): Dataloaders whose annotation files to
            check when explaining a failure.
        runner_cls (type, optional): A Runner subclass to build.
    """
    return guarded(build_cfg, lambda cfg: job(build_runner(cfg, runner_cls)),
                   loaders)


def guarded(build_cfg: Callable[[], Config], job: Callable[[Config], Any],
            loaders: Iterable[str] = DATALOADERS) -> Tuple[int, Any]:
    """Build the config, then return ``(0, job(cfg))``.

    Imports :mod:`eca_mmdet.engine` (safe checkpoint loading, hooks) first.
    A failure that :func:`explain_failure` can put in words is printed as
    one ``error:`` line and gives ``(2, None)``; anything else propagates
    with its traceback. A distributed process group is torn down either way.
    """
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    import eca_mmdet.engine  # noqa: F401  (safe I/O and hooks, opt-in)

    from .cpu_distributed import teardown_distributed
    from .failure_report import explain_failure

    setup_cache_size_limit_of_dynamo()
    cfg = None
    try:
        cfg = build_cfg()
        result = job(cfg)
    except Exception as e:
        message = explain_failure(e, cfg, loaders)
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr)
        teardown_distributed(sync=False)
        return 2, None
    teardown_distributed()
    return 0, result
