"""What every tool in ``tools/`` shares: the common arguments, building the
runner, and how a run ends (one line for our own errors)."""
import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from mmengine.config import Config, DictAction

from ..errors import ReadableError
from .cpu_distributed import teardown_distributed


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


def run_tool(main: Callable[[Optional[Sequence[str]]], Optional[int]],
             argv: Optional[Sequence[str]] = None) -> int:
    """``main(argv)`` as a process's exit status.

    A :class:`~eca_mmdet.errors.ReadableError` is printed as one ``error:``
    line and gives 2; any other exception propagates with its traceback. A
    distributed process group is torn down either way.
    """
    try:
        code = main(argv)
    except BaseException as error:
        teardown_distributed(sync=False)
        if not isinstance(error, ReadableError):
            raise
        print(f'error: {error}', file=sys.stderr)
        return 2
    teardown_distributed()
    return code or 0
