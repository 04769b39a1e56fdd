"""Briefly trained ECA detectors, deployed with mmdeploy to ONNX Runtime
end to end (NMS included), predict what PyTorch predicts: every PyTorch
detection above 0.3 found with box IoU >= 0.99, a score within 0.01 and a
mask IoU >= 0.95, through tools/deployment/deploy.py as a user runs it.

Needs mmdeploy 1.3.1 with onnxruntime 1.15.1, which ``make test-compat``
installs (mmdeploy's export fails on torch 2.13)."""
import json
import os.path as osp

import pytest

from helpers import ROOT, tool_output

pytest.importorskip('mmdeploy', reason='mmdeploy is installed by make '
                    'test-compat (torch 2.1); it does not export on torch '
                    '2.13')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from eca_mmdet.datasets import generate_dataset
    data = tmp_path_factory.mktemp('shapes')
    generate_dataset(str(data), num_train=120, num_val=20, seed=3,
                     progress=False)
    return data


@pytest.mark.parametrize('det, deploy_cfg, as_mmdeploy', [
    ('retinanet', 'detection_onnxruntime_dynamic.py', False),
    # two-stage: mmdeploy post-processes differently from mmdet in two
    # places (tools/deployment/deploy.py, mmdeploy_post_processing); with
    # those given to PyTorch too, the deployed model must agree exactly
    ('mask_rcnn', 'instance-seg_onnxruntime_dynamic.py', True),
])
def test_deployed_detector_predicts_what_pytorch_predicts(
        shapes, tmp_path, det, deploy_cfg, as_mmdeploy):
    config = osp.join(ROOT, 'configs', 'demo', f'{det}_eca_r18_shapes.py')
    tool_output('train.py', config, '--data-root', f'{shapes}/',
                '--work-dir', tmp_path / 'train', '--cfg-options',
                'train_cfg.max_epochs=8', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False')
    out = tool_output('deployment/deploy.py',
                      osp.join(ROOT, 'configs', 'deploy', deploy_cfg), config,
                      tmp_path / 'train' / 'epoch_8.pth', shapes / 'val',
                      '--work-dir', tmp_path / 'deploy',
                      *(['--as-mmdeploy'] if as_mmdeploy else []))
    assert 'wrote' in out and 'unmatched 0' in out
    with open(tmp_path / 'deploy' / 'report.json') as f:
        report = json.load(f)
    assert report['images'] == 20
    assert report['compared'] >= 10, report['compared']  # enough to judge
    assert report['unmatched'] == 0
    assert report['min_iou'] >= 0.99
    assert report['max_score_diff'] <= 0.01
    if det == 'mask_rcnn':
        assert report['min_mask_iou'] >= 0.95
