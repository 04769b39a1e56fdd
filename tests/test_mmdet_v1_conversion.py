"""The authors' MMDetection v1 detectors convert exactly into the
configs/released/ models: files written in the v1 layout (by an independent
writer, tests/ckpt_utils.py) convert back to the original weights, load
through tools/test.py, and bad files are refused with a clear message."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config

from eca_mmdet.checkpoint import CheckpointError, load_checkpoint_file
from eca_mmdet.checkpoint.mmdet_v1 import convert_mmdet_v1

from ckpt_utils import mmdet_v1_layout
from helpers import ROOT, run_tool, tool_output

RELEASED = {  # config -> the authors' file name
    'faster_rcnn_eca_r50_v1': 'faster_rcnn_ecanet50_k5_bs8_lr0.01',
    'faster_rcnn_eca_r101_v1': 'faster_rcnn_ecanet101_3357_bs8_lr0.01',
    'mask_rcnn_eca_r50_v1': 'mask_rcnn_ecanet50_k3377_bs8_lr0.01',
    'mask_rcnn_eca_r101_v1': 'mask_rcnn_ecanet101_k3357_bs8_lr0.01',
    'retinanet_eca_r50_v1': 'RetinaNet_ecanet50_k3377_bs8_lr0.01',
    'retinanet_eca_r101_v1': 'RetinaNet_ecanet101_k3357_bs8_lr0.01',
}


def released_model(name, randomize=True):
    from mmdet.registry import MODELS
    model = MODELS.build(Config.fromfile(
        osp.join(ROOT, 'configs', 'released', f'{name}.py')).model)
    if randomize:  # every value distinct, so no misplaced row goes unseen
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for v in model.state_dict().values():
                if v.is_floating_point():
                    v.copy_(torch.randn(v.shape, generator=g))
    return model


def save_v1(model, name, path):
    torch.save(mmdet_v1_layout(model.state_dict(), RELEASED[name]), path,
               _use_new_zipfile_serialization=False)  # as torch 1.x did


@pytest.mark.parametrize('name', sorted(RELEASED))
def test_v1_file_converts_back_to_the_original_weights(name, tmp_path):
    model = released_model(name)
    save_v1(model, name, tmp_path / 'v1.pth')
    converted, config = convert_mmdet_v1(
        load_checkpoint_file(str(tmp_path / 'v1.pth')))
    assert config == name
    want = model.state_dict()
    assert list(converted) == list(want)
    for key, value in want.items():
        assert torch.equal(converted[key], value), key


# the four bias vectors mmdet's upgrade_model_version.py gets wrong on v1
# files: sigmoid heads rotated, background blocks dropped from the wrong end
@pytest.mark.parametrize('name,key', [
    ('faster_rcnn_eca_r50_v1', 'rpn_head.rpn_cls.bias'),
    ('retinanet_eca_r50_v1', 'bbox_head.retina_cls.bias'),
    ('faster_rcnn_eca_r50_v1', 'roi_head.bbox_head.fc_reg.bias'),
    ('mask_rcnn_eca_r50_v1', 'roi_head.mask_head.conv_logits.bias'),
])
def test_bias_vectors_keep_their_classes(name, key):
    model = released_model(name, randomize=False)
    sd = model.state_dict()
    for k in (key, key.replace('.bias', '.weight')):
        n = sd[k].shape[0]
        sd[k] = torch.arange(n, dtype=torch.float32).reshape(
            (n, ) + (1, ) * (sd[k].dim() - 1)).expand_as(sd[k]).clone()
    converted, config = convert_mmdet_v1(mmdet_v1_layout(sd, RELEASED[name]))
    assert config == name
    for k in (key, key.replace('.bias', '.weight')):
        assert torch.equal(converted[k], sd[k]), k


def test_fc_cls_background_moves_last():
    """v1 row 0 (background) becomes mmdet 3's row 80, class c (v1 row
    c + 1) becomes row c, in weight and bias."""
    model = released_model('faster_rcnn_eca_r50_v1', randomize=False)
    v1 = mmdet_v1_layout(model.state_dict(), 'x')
    v1['state_dict']['bbox_head.fc_cls.bias'] = torch.arange(81.)
    converted, _ = convert_mmdet_v1(v1)
    bias = converted['roi_head.bbox_head.fc_cls.bias']
    assert bias[80] == 0 and torch.equal(bias[:80], torch.arange(1., 81.))


def coco_layout(root, num_images=2, size=(160, 120)):
    """A COCO val2017 layout with the 80 COCO categories, 2 images."""
    import mmcv
    from mmdet.datasets import CocoDataset
    rng = np.random.default_rng(0)
    (root / 'val2017').mkdir(parents=True)
    (root / 'annotations').mkdir()
    images, anns = [], []
    for i in range(1, num_images + 1):
        img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        mmcv.imwrite(img, str(root / 'val2017' / f'{i:012d}.jpg'))
        images.append(dict(id=i, file_name=f'{i:012d}.jpg', width=size[0],
                           height=size[1]))
        anns.append(dict(id=i, image_id=i, category_id=1, iscrowd=0,
                         bbox=[20, 20, 60, 50], area=3000.,
                         segmentation=[[20, 20, 80, 20, 80, 70, 20, 70]]))
    cats = [dict(id=i + 1, name=n)
            for i, n in enumerate(CocoDataset.METAINFO['classes'])]
    with open(root / 'annotations' / 'instances_val2017.json', 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)


def test_converted_file_evaluates_through_test_tool(tmp_path):
    """A v1 Mask R-CNN whose classifier favours 'person' converts, loads in
    tools/test.py and tools/infer.py and predicts 'person' (label 0): had
    background stayed first, the favoured row would be background and
    nothing be found."""
    name = 'mask_rcnn_eca_r50_v1'
    model = released_model(name, randomize=False)
    with torch.no_grad():
        model.roi_head.bbox_head.fc_cls.bias[0] = 20.  # person
    save_v1(model, name, tmp_path / 'v1.pth')
    ckpt = tmp_path / 'converted.pth'
    printed = tool_output('convert_checkpoint.py', tmp_path / 'v1.pth', ckpt)
    assert f'configs/released/{name}.py' in printed
    assert RELEASED[name] in printed  # the v1 config path, from meta
    meta = load_checkpoint_file(str(ckpt))['meta']
    classes = meta['dataset_meta']['classes']
    assert len(classes) == 80 and classes[0] == 'person'
    coco_layout(tmp_path / 'coco')
    out = tmp_path / 'results.pkl'
    printed = tool_output(
        'test.py', osp.join(ROOT, 'configs', 'released', f'{name}.py'),
        ckpt, '--data-root', tmp_path / 'coco', '--work-dir',
        tmp_path / 'work', '--out', out)
    assert 'coco/bbox_mAP=' in printed and 'coco/segm_mAP=' in printed
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 2
    for r in results:
        labels = r['pred_instances']['labels']
        assert len(labels) > 0 and (labels == 0).all()
        assert r['pred_instances']['scores'].min() > 0.99

    # and tools/infer.py draws and saves its predictions
    out_dir = tmp_path / 'infer'
    tool_output('infer.py', tmp_path / 'coco' / 'val2017',
             osp.join(ROOT, 'configs', 'released', f'{name}.py'), ckpt,
             '--out-dir', out_dir, '--device', 'cpu')
    assert len(list((out_dir / 'vis').iterdir())) == 2
    for pred in (out_dir / 'preds').iterdir():
        pred = json.loads(pred.read_text())
        assert pred['labels'] and set(pred['labels']) == {0}
        assert len(pred['masks']) == len(pred['bboxes'])


def test_clear_errors(tmp_path):
    model = released_model('faster_rcnn_eca_r50_v1', randomize=False)
    sd = model.state_dict()
    # not a v1 file: an mmdet 3 checkpoint
    with pytest.raises(CheckpointError, match='not an MMDetection v1'):
        convert_mmdet_v1({'meta': {'mmdet_version': '3.3.0'},
                          'state_dict': sd})
    # ECA kernel sizes of no released config (k=3 everywhere)
    other = released_model('faster_rcnn_eca_r50_v1', randomize=False)
    other.backbone.__init__(depth=50, k_size=(3, 3, 3, 3))
    with pytest.raises(CheckpointError, match='matches no released config'):
        convert_mmdet_v1(mmdet_v1_layout(other.state_dict(), 'x'))
    # a head the converter does not know (cascade stages)
    v1 = mmdet_v1_layout(sd, 'x')
    v1['state_dict'] = {k.replace('bbox_head.', 'bbox_head.0.'): v
                        for k, v in v1['state_dict'].items()}
    with pytest.raises(CheckpointError, match='unknown head'):
        convert_mmdet_v1(v1)
    # no ECA weights: a plain ResNet detector
    v1 = mmdet_v1_layout(sd, 'x')
    v1['state_dict'] = {k: v for k, v in v1['state_dict'].items()
                        if '.eca.' not in k}
    with pytest.raises(CheckpointError, match='no ECA weights'):
        convert_mmdet_v1(v1)
    # another class count (a VOC model: 21 classes)
    v1 = mmdet_v1_layout(sd, 'x')
    v1['state_dict']['bbox_head.fc_cls.weight'] = torch.zeros(21, 1024)
    with pytest.raises(CheckpointError, match='has 21 outputs, expected 81'):
        convert_mmdet_v1(v1)
    # through the tool: one error line, exit 1, nothing written
    torch.save({'meta': {'mmdet_version': '1.0rc1'}, 'state_dict': {
        'backbone.conv1.weight': torch.zeros(1)}}, tmp_path / 'bad.pth')
    r = run_tool('convert_checkpoint.py', tmp_path / 'bad.pth',
                 tmp_path / 'out.pth')
    assert r.returncode == 2, r.stderr[-2000:]
    (line, ) = r.stderr.strip().splitlines()
    assert line.startswith('error: ')
    assert not (tmp_path / 'out.pth').exists()
