#!/usr/bin/env python
"""Channel weights learned by ECA / SE blocks, per class (supplement Fig. B).

Runs a trained detector's backbone over a dataset's images, records the gate
(the sigmoid output, one weight per channel) of every attention block, and
averages it per object class (an image counts for every class it contains)
and over all images. Draws one panel per block, named ``conv_i_j`` as in the
paper (j-th block of stage i; ResNet stages are 2..5), with one line per
class; ``--compare`` draws a second model's panels under the first's, e.g.
ECA under SE as in the paper's figure.

    python tools/analysis/visualize_attention.py \\
        configs/demo/mask_rcnn_eca_r18_shapes.py work_dirs/demo/epoch_22.pth
    python tools/analysis/visualize_attention.py SE_CONFIG SE_CKPT \\
        --compare ECA_CONFIG ECA_CKPT --classes circle cross --out fig.png

Works with every attention module of eca_mmdet (ECA, SE and the Table-2
variants), inside ECAResNet or as mmdet ResNet plugins: the gates are read by
forward hooks on the attention modules, the model runs unchanged.
"""
import argparse
import json
import os.path as osp
import re
import sys
from collections import OrderedDict
from functools import partial

import eca_mmdet.engine  # noqa: F401  (opt-in: safe checkpoint reads)
from eca_mmdet import cli

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

BLOCK = re.compile(r'(?:^|\.)layer(\d+)\.(\d+)\.')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--compare', nargs=2, metavar=('CONFIG', 'CHECKPOINT'),
                   help='a second model, drawn under the first')
    p.add_argument('--classes', nargs='+',
                   help='class names to draw (default: all)')
    p.add_argument('--split', default='test',
                   choices=['train', 'val', 'test'],
                   help='which dataloader\'s dataset to run over')
    p.add_argument('--max-images', type=int, default=None)
    p.add_argument('--data-root', help='dataset root (as in train.py)')
    p.add_argument('--out', default='attention_weights.png',
                   help='PNG to write')
    p.add_argument('--json', help='also write the averaged weights here')
    return p.parse_args(argv)


def attention_blocks(model):
    """``{conv_i_j: module}`` for every attention module of the backbone."""
    from eca_mmdet.layers import ChannelAttention
    blocks = OrderedDict()
    for name, module in model.backbone.named_modules():
        if not isinstance(module, ChannelAttention):
            continue
        m = BLOCK.search(name + '.')
        if m is None:
            continue
        stage, index = int(m.group(1)) + 1, int(m.group(2)) + 1
        blocks[f'conv_{stage}_{index}'] = module
    if not blocks:
        raise ValueError('the backbone has no ECA/SE-style attention blocks '
                         '(eca_mmdet ChannelAttention modules) to visualise')
    return blocks


class GateRecorder:
    """Keeps the last gate each block computed, from forward hooks (see
    :class:`~eca_mmdet.layers.ChannelAttention` for what a hook sees)."""

    def __init__(self, blocks):
        self.last = {}
        for name, module in blocks.items():
            module.register_forward_hook(partial(self._record, name),
                                         with_kwargs=True)

    def _record(self, name, module, args, kwargs, output):
        gate = output if kwargs.get('gate_only') else module.gate(args[0])
        self.last[name] = gate.detach().flatten(1).float()


def image_classes(info):
    return sorted({inst['bbox_label'] for inst in info.get('instances', [])
                   if not inst.get('ignore_flag', 0)})


def collect(config, checkpoint, split, max_images, data_root):
    """Mean gate per (block, class) and per block over all images."""
    import torch
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.utils import ProgressBar

    cfg = cli.load_config(config, data_root=data_root)
    model = cli.init_model(cfg, checkpoint, strict=True)
    blocks = attention_blocks(model)
    recorder = GateRecorder(blocks)
    loader_cfg = cfg.get(f'{split}_dataloader')
    if not loader_cfg:
        raise cli.ConfigError(f'{config} has no {split}_dataloader')
    cli.check_datasets_exist(cfg, loaders=(f'{split}_dataloader', ))
    dataset = DATASETS.build(loader_cfg.dataset)
    classes = dataset.metainfo['classes']
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    sums = {b: {} for b in blocks}
    counts = {}
    total = {b: 0 for b in blocks}
    print(f'{osp.basename(config)}: {len(blocks)} attention blocks, '
          f'{n} images')
    bar = ProgressBar(n)
    with torch.no_grad():
        for i in range(n):
            info = dataset.get_data_info(i)
            labels = image_classes(info)
            batch = model.data_preprocessor(pseudo_collate([dataset[i]]),
                                            False)
            model.backbone(batch['inputs'])
            for b in blocks:
                g = recorder.last[b][0]
                total[b] = total[b] + g
                for c in labels:
                    sums[b][c] = sums[b].get(c, 0) + g
            for c in labels:
                counts[c] = counts.get(c, 0) + 1
            bar.update()
    print()
    per_class = {b: {classes[c]: (s / counts[c]).tolist()
                     for c, s in sorted(sums[b].items())} for b in blocks}
    overall = {b: (total[b] / n).tolist() for b in blocks}
    kind = type(next(iter(blocks.values()))).__name__
    return dict(config=config, checkpoint=checkpoint, attention=kind,
                images=n, images_per_class={classes[c]: k for c, k in
                                            sorted(counts.items())},
                per_class=per_class, all_images=overall)


def draw(results, class_names, out, cols=4):
    """One panel per block (rows of ``cols``), each model's row of panels
    under the previous model's; one line per class."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    blocks = list(results[0]['per_class'])
    for r in results[1:]:
        if list(r['per_class']) != blocks:
            raise ValueError('--compare needs two models with the same '
                             'blocks (same depth)')
    names = class_names or sorted(
        {c for r in results for b in r['per_class'].values() for c in b})
    colors = dict(zip(names, plt.get_cmap('tab10').colors))
    groups = (len(blocks) + cols - 1) // cols
    rows = groups * len(results)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.0 * rows),
                             squeeze=False)
    for g in range(groups):
        for m, res in enumerate(results):
            row = g * len(results) + m
            for col in range(cols):
                ax = axes[row][col]
                k = g * cols + col
                if k >= len(blocks):
                    ax.axis('off')
                    continue
                b = blocks[k]
                for c in names:
                    w = res['per_class'][b].get(c)
                    if w is not None:
                        ax.plot(w, lw=0.9, color=colors[c], label=c)
                ax.plot(res['all_images'][b], lw=0.6, color='0.5', ls='--',
                        label='all images')
                # y zoomed to the data: trained gates often sit near 0.5
                ax.margins(x=0, y=0.15)
                ax.set_title(f'{b} ({res["attention"]})', fontsize=8)
                ax.tick_params(labelsize=6)
                if col == 0:
                    ax.set_ylabel('channel weight', fontsize=7)
                if row == rows - 1 or (k + cols >= len(blocks)
                                       and m == len(results) - 1):
                    ax.set_xlabel('channel', fontsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    top = 1 - 0.6 / fig.get_figheight()   # room for title and legend
    fig.legend(handles, labels, loc='lower center', ncol=len(labels),
               fontsize=8, frameon=False, bbox_to_anchor=(0.5, top))
    title = ' vs '.join(f'{r["attention"]} ({r["images"]} images)'
                        for r in results)
    fig.suptitle(f'Mean channel weights per class: {title}', y=0.998,
                 fontsize=9, va='top')
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    runs = [(args.config, args.checkpoint)]
    if args.compare:
        runs.append(tuple(args.compare))
    results = [collect(c, k, args.split, args.max_images, args.data_root)
               for c, k in runs]
    known = {c for r in results for b in r['per_class'].values() for c in b}
    unknown = sorted(set(args.classes or ()) - known)
    if unknown:
        raise cli.ConfigError(f'--classes {unknown} not found; classes with '
                              f'images: {sorted(known)}')
    draw(results, args.classes, args.out)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f)
    for r in results:
        print(f'{r["attention"]}: images per class {r["images_per_class"]}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(cli.run_tool(main))
