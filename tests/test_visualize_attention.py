"""tools/analysis/visualize_attention.py: the recorded per-class channel
weights equal an independent computation of each block's gate, and the
tool draws ECA-vs-SE panels from checkpoints in mmengine's format."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from helpers import ROOT

TOOL = osp.join(ROOT, 'tools', 'analysis', 'visualize_attention.py')
ECA_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
SE_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_se_r18_shapes.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Shapes data and a checkpoint per model, as mmengine writes them."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import save_checkpoint

    import eca_mmdet  # noqa: F401
    from eca_mmdet.datasets import generate_dataset
    tmp = tmp_path_factory.mktemp('vis')
    root = str(tmp / 'data')
    generate_dataset(root, num_train=2, num_val=6, seed=2, progress=False)
    init_default_scope('mmdet')
    ckpts = {}
    for name, cfg_path in (('eca', ECA_CFG), ('se', SE_CFG)):
        cfg = Config.fromfile(cfg_path)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        for m in model.backbone.modules():  # gates away from 0.5
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.data.uniform_(-1, 1)
                m.running_mean.uniform_(-0.2, 0.2)
        ckpts[name] = str(tmp / f'{name}.pth')
        save_checkpoint({'state_dict': model.state_dict(),
                         'meta': {'epoch': 1}}, ckpts[name])
    return root + '/', ckpts, tmp


def test_recorded_weights_equal_independent_gates(setup):
    root, ckpts, tmp = setup
    js = str(tmp / 'eca.json')
    r = subprocess.run(
        [sys.executable, TOOL, ECA_CFG, ckpts['eca'], '--data-root', root,
         '--out', str(tmp / 'eca.png'), '--json', js], capture_output=True,
        text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    with open(js) as f:
        (res, ) = json.load(f)
    assert res['attention'] == 'ECA' and res['images'] == 6
    assert list(res['per_class'])[0] == 'conv_2_1'
    assert len(res['per_class']) == 8   # ResNet-18: 2 blocks x 4 stages

    # independent: run the block's layers by hand on its captured input
    from eca_mmdet.cli import init_model, load_config
    cfg = load_config(ECA_CFG, data_root=root)
    model = init_model(cfg, ckpts['eca'], strict=True)
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    blk = model.backbone.layer3[1]             # conv_4_2
    captured = []
    blk.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    sums, counts, total = {}, {}, 0
    with torch.no_grad():
        for i in range(len(ds)):
            batch = model.data_preprocessor(pseudo_collate([ds[i]]), False)
            model.backbone(batch['inputs'])
            x = captured[-1]
            z = blk.norm2(blk.conv2(blk.relu(blk.norm1(blk.conv1(x)))))
            y = z.mean((2, 3))                              # (1, C)
            k = blk.eca.conv.weight.view(-1)
            c, pad = y.shape[1], (len(k) - 1) // 2
            yp = torch.nn.functional.pad(y, (pad, pad))
            g = torch.sigmoid(torch.stack(
                [(yp[0, j:j + len(k)] * k).sum() for j in range(c)]))
            total = total + g
            labels = {inst['bbox_label'] for inst in
                      ds.get_data_info(i)['instances']}
            for lab in labels:
                name = ds.metainfo['classes'][lab]
                sums[name] = sums.get(name, 0) + g
                counts[name] = counts.get(name, 0) + 1
    assert res['images_per_class'] == counts
    got = res['per_class']['conv_4_2']
    for name in counts:
        assert torch.allclose(torch.tensor(got[name]),
                              sums[name] / counts[name], atol=1e-6)
    assert torch.allclose(torch.tensor(res['all_images']['conv_4_2']),
                          total / len(ds), atol=1e-6)
    assert float((total / len(ds)).std()) > 0.005  # gates not all 0.5


def test_cli_compare_writes_png_and_json(setup):
    root, ckpts, tmp = setup
    out, js = str(tmp / 'cmp.png'), str(tmp / 'cmp.json')
    r = subprocess.run(
        [sys.executable, TOOL, SE_CFG, ckpts['se'], '--compare', ECA_CFG,
         ckpts['eca'], '--data-root', root, '--classes', 'circle', 'cross',
         '--out', out, '--json', js], capture_output=True, text=True,
        cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'wrote {out}' in r.stdout and '6/6' in r.stdout  # progress bar
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(js) as f:
        results = json.load(f)
    assert [r['attention'] for r in results] == ['SE', 'ECA']
    assert len(results[0]['per_class']['conv_5_2']['circle']) == 256


def test_clear_errors(setup):
    root, ckpts, tmp = setup
    r = subprocess.run([sys.executable, TOOL, ECA_CFG, str(tmp / 'nope.pth'),
                        '--data-root', root], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2 and 'checkpoint not found' in r.stderr
    r = subprocess.run([sys.executable, TOOL, ECA_CFG, ckpts['eca'],
                        '--data-root', root, '--classes', 'zebra',
                        '--out', str(tmp / 'x.png')],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "['zebra'] not found" in r.stderr
