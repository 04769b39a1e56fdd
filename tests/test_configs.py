"""The paper's six COCO configs and their plain/SE twins build and run;
every config folder has a README and a metafile mim can read."""
import glob
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.registry import init_default_scope

import eca_mmdet  # noqa: F401

from helpers import ROOT

DETS = ['faster_rcnn', 'mask_rcnn', 'retinanet']
KSUM = {50: 3 * 3 + 4 * 5 + 6 * 5 + 3 * 7,   # k3557 = 80
        101: 3 * 3 + 4 * 3 + 23 * 5 + 3 * 7}  # k3357 = 157


def build(path):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # no ImageNet weights in tests
    return cfg, MODELS.build(cfg.model)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def tiny_batch(model, with_mask, n=2, size=96):
    from mmdet.testing import demo_mm_inputs
    packed = demo_mm_inputs(batch_size=n, image_shapes=[(3, size, size)] * n,
                            num_items=[3] * n, num_classes=80,
                            with_mask=with_mask)
    return model.data_preprocessor(packed, True)


@pytest.mark.parametrize('det', DETS)
@pytest.mark.parametrize('depth', [50, 101])
def test_config_builds_trains_and_predicts(det, depth):
    path = osp.join(ROOT, 'configs', f'{det}_eca_r{depth}.py')
    cfg, model = build(path)
    assert cfg.model.backbone.type == 'ECAResNet'
    assert cfg.model.backbone.arch == (
        'eca_resnet50_k3557' if depth == 50 else 'eca_resnet101_k3357')
    assert Config.fromfile(path).model.backbone.init_cfg.checkpoint == (
        'eca://resnet50_k3557' if depth == 50 else 'eca://resnet101_k3357')
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.auto_scale_lr.base_batch_size == 8
    assert cfg.train_dataloader.batch_size == 2
    model.init_weights()

    model.train()
    data = tiny_batch(model, with_mask=det == 'mask_rcnn')
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.layer4[0].eca.conv.weight.grad is not None

    model.eval()
    with torch.no_grad():
        data = tiny_batch(model, with_mask=det == 'mask_rcnn', n=1)
        preds = model(**data, mode='predict')
    assert len(preds) == 1 and 'bboxes' in preds[0].pred_instances
    if det == 'mask_rcnn':
        assert 'masks' in preds[0].pred_instances

    _, plain = build(osp.join(ROOT, 'configs', 'baselines',
                              f'{det}_r{depth}.py'))
    _, se = build(osp.join(ROOT, 'configs', 'baselines',
                           f'{det}_se_r{depth}.py'))
    assert n_params(model) - n_params(plain) == KSUM[depth]
    blocks = (3, 4, 6, 3) if depth == 50 else (3, 4, 23, 3)
    se_params = sum(n * (2 * c * c // 16 + c // 16 + c)
                    for n, c in zip(blocks, (256, 512, 1024, 2048)))
    assert n_params(se) - n_params(plain) == se_params


CONFIG_DIR = osp.join(ROOT, 'configs')
METAFILES = sorted(glob.glob(osp.join(CONFIG_DIR, '**', 'metafile.yml'),
                             recursive=True))


def test_every_config_folder_has_readme_and_metafile_listing_it():
    """Model configs are listed in metafiles; configs/deploy/ (mmdeploy's
    deploy configs, not models) has its README."""
    configs = {osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
        if '_base_' not in p and '/deploy/' not in p}
    assert osp.isfile(osp.join(CONFIG_DIR, 'deploy', 'README.md'))
    listed = [m['Config'] for mf in METAFILES
              for m in yaml.safe_load(open(mf))['Models']]
    assert sorted(listed) == sorted(configs)  # each listed once
    for folder in {osp.dirname(p) for p in configs}:
        assert osp.isfile(osp.join(ROOT, folder, 'README.md')), folder
        assert osp.isfile(osp.join(ROOT, folder, 'metafile.yml')), folder


MODELS_LISTED = [(mf, m) for mf in METAFILES
                 for m in yaml.safe_load(open(mf))['Models']]


def timm_available():
    try:
        import timm  # noqa: F401
    except ImportError:  # timm, or the torchvision it needs
        return False
    return True


@pytest.mark.parametrize('metafile, model', MODELS_LISTED,
                         ids=[m['Config'] for _, m in MODELS_LISTED])
def test_metafile_models_exist_and_build(metafile, model):
    """What mim reads: collections with paper and README, models whose
    config exists and builds into a detector."""
    meta = yaml.safe_load(open(metafile))
    collections = {c['Name']: c for c in meta['Collections']}
    for c in collections.values():
        assert c['Paper']['URL'] == 'https://arxiv.org/abs/1910.03151'
        assert osp.isfile(osp.join(ROOT, c['README']))
    m = model
    assert m['In Collection'] in collections, m['Name']
    assert m['Name'] == osp.splitext(osp.basename(m['Config']))[0]
    assert osp.dirname(m['Config']) == osp.relpath(
        osp.dirname(metafile), ROOT)
    for result in m.get('Results', []):
        assert set(result) == {'Task', 'Dataset', 'Metrics'}
        assert all(0 < v < 100 for v in result['Metrics'].values())
    path = osp.join(ROOT, m['Config'])
    if Config.fromfile(path).model.backbone.type == 'ECATimmBackbone' and \
            not timm_available():
        pytest.skip('timm (with the torchvision of this torch) is not '
                    'installed here: pip install "eca-mmdet[timm]"')
    _, built = build(path)
    assert n_params(built) > 1_000_000, m['Name']
