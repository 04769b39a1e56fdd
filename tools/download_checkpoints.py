#!/usr/bin/env python
"""Fetch checkpoints into their caches ahead of time (like ``mim download``),
for clusters whose compute nodes are offline.

    python tools/download_checkpoints.py eca://resnet101_k3357 \\
        timm://ecaresnet101d
    python tools/download_checkpoints.py --all    # every released file, timm's
    python tools/download_checkpoints.py --list

Names are what configs use: ``eca://NAME`` (the authors' ImageNet and
MMDetection-v1 files, from Google Drive; a bare released name works too),
``hf-hub:REPO`` / ``timm://MODEL`` (timm's weights, Hugging Face hub) and
``https://`` URLs (torch hub's cache). Each file is checked before it takes
its cache name; copy the caches (``$ECA_MMDET_CHECKPOINTS``, ``$HF_HOME``,
``$TORCH_HOME``) to the offline machines, or share them (on a file system
with locks). A transfer that receives nothing for
``$ECA_MMDET_DOWNLOAD_TIMEOUT`` seconds (default 60) fails; a run that waits
for another one fetching the same file gives up after
``$ECA_MMDET_LOCK_TIMEOUT`` seconds (default 1800).
"""
import argparse
import sys

from eca_mmdet.checkpoint import RELEASED_CHECKPOINTS, CheckpointError
from eca_mmdet.checkpoint.sources import (
    SCHEME,
    TIMM_SCHEME,
    TIMM_WEIGHTS,
    local_checkpoint,
)


def all_names():
    return ([SCHEME + name for name in RELEASED_CHECKPOINTS]
            + [TIMM_SCHEME + name for name in TIMM_WEIGHTS])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('names', nargs='*', help='checkpoint names or URLs')
    parser.add_argument('--all', action='store_true',
                        help='every released file and timm\'s ECA weights')
    parser.add_argument('--list', action='store_true',
                        help='print the known names and exit')
    args = parser.parse_args(argv)
    if args.list:
        print('\n'.join(all_names()))
        return 0
    names = all_names() if args.all else args.names
    if not names:
        parser.error('give names, --all or --list')
    failed = 0
    for name in names:
        if name in RELEASED_CHECKPOINTS:
            name = SCHEME + name
        try:
            print(f'{name}: {local_checkpoint(name)}', flush=True)
        except CheckpointError as e:
            print(f'error: {name}: {e}', file=sys.stderr, flush=True)
            failed += 1
    if failed:
        print(f'{failed} of {len(names)} not fetched', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
