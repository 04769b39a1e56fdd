"""Broken datasets get one readable error; benign oddities train as in mmdet.

Each case starts from a small generated COCO dataset and breaks one thing.
"""
import json
import math
import os
import os.path as osp
import shutil

import pytest
import torch

from eca_mmdet.datasets import (
    AnnotationError,
    check_coco_annotation_file,
    generate_dataset,
)

from helpers import ROOT, run_tool

CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
TINY = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    generate_dataset(root, num_train=8, num_val=4, seed=1, progress=False)
    return root


@pytest.fixture
def copy(base, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(base, root)
    return root


def ann_path(root, split='train'):
    return osp.join(root, 'annotations', f'{split}.json')


def edit(root, fn, split='train'):
    with open(ann_path(root, split)) as f:
        data = json.load(f)
    fn(data)
    with open(ann_path(root, split), 'w') as f:
        json.dump(data, f)
    return data


def assert_one_clear_error(r, *needles):
    assert r.returncode == 2, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1, r.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


# -- the checker itself: one case per way a file can be broken -------------

BROKEN = {
    'html page': (lambda p, d: open(p, 'w').write('<html>404</html>'),
                  'is not valid JSON'),
    'empty': (lambda p, d: open(p, 'w').close(), 'the file is empty'),
    'truncated': (lambda p, d: open(p, 'w').write(json.dumps(d)[:300]),
                  'is not valid JSON'),
    'binary': (lambda p, d: open(p, 'wb').write(b'\x80\x81\xff' * 10),
               'is not text'),
    'a list': (lambda p, d: json.dump([d], open(p, 'w')),
               'found a list'),
    'no images': (lambda p, d: json.dump({k: v for k, v in d.items()
                                          if k != 'images'}, open(p, 'w')),
                  "has no 'images' list"),
    'no categories': (lambda p, d: json.dump(
        {k: v for k, v in d.items() if k != 'categories'}, open(p, 'w')),
        "has no 'categories' list"),
    'annotation without bbox': (lambda p, d: json.dump(
        dict(d, annotations=[{k: v for k, v in a.items() if k != 'bbox'}
                             for a in d['annotations']]), open(p, 'w')),
        "annotations[0] lacks 'bbox'"),
    'image without file_name': (lambda p, d: json.dump(
        dict(d, images=[{k: v for k, v in i.items() if k != 'file_name'}
                        for i in d['images']]), open(p, 'w')),
        "images[0] lacks 'file_name'"),
    'bbox of 3 numbers': (lambda p, d: json.dump(
        dict(d, annotations=[dict(a, bbox=a['bbox'][:3])
                             for a in d['annotations']]), open(p, 'w')),
        'must be [x, y, width, height]'),
}


@pytest.mark.parametrize('case', sorted(BROKEN))
def test_checker_names_file_and_problem(copy, case):
    path = ann_path(copy)
    with open(path) as f:
        data = json.load(f)
    breaker, message = BROKEN[case]
    breaker(path, data)
    with pytest.raises(AnnotationError) as e:
        check_coco_annotation_file(path)
    assert path in str(e.value) and message in str(e.value), str(e.value)


def test_checker_accepts_good_file_and_checks_class_names(copy):
    from eca_mmdet.datasets import CLASSES
    check_coco_annotation_file(ann_path(copy), CLASSES)
    with pytest.raises(AnnotationError, match='none of the configured'):
        check_coco_annotation_file(ann_path(copy), ('person', 'car'))


# -- through tools/train.py and tools/test.py -------------------------------

def test_train_with_non_json_annotations(copy, tmp_path):
    with open(ann_path(copy), 'w') as f:
        f.write('<html><body>Quota exceeded</body></html>')
    r = run_tool('train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--data-root', copy + '/', '--cfg-options', *TINY)
    assert_one_clear_error(r, 'train_dataloader', ann_path(copy),
                           'not valid JSON')
    assert not osp.exists(tmp_path / 'w' / 'epoch_1.pth')


def test_train_with_annotations_missing_keys(copy, tmp_path):
    edit(copy, lambda d: [a.pop('category_id') for a in d['annotations']])
    r = run_tool('train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--data-root', copy + '/', '--cfg-options', *TINY)
    assert_one_clear_error(r, ann_path(copy), "lacks 'category_id'")


def test_train_with_missing_images_stops_before_training(copy, tmp_path):
    gone = sorted(os.listdir(osp.join(copy, 'train')))[:2]
    for name in gone:
        os.remove(osp.join(copy, 'train', name))
    r = run_tool('train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--data-root', copy + '/', '--cfg-options', *TINY)
    assert_one_clear_error(r, '2 of 8 images', ann_path(copy),
                           osp.join(copy, 'train', gone[0]),
                           'data_prefix.img')
    assert 'Epoch(train)' not in r.stdout  # not a single iteration ran


def test_test_tool_with_broken_annotations(copy, tmp_path):
    edit(copy, lambda d: d.pop('images'), split='val')
    ckpt = str(tmp_path / 'model.pth')
    torch.save({'state_dict': {}}, ckpt)
    r = run_tool('test.py', CONFIG, ckpt, '--work-dir', str(tmp_path / 'w'),
                 '--data-root', copy + '/', '--cfg-options', *TINY)
    assert_one_clear_error(r, 'test_dataloader', ann_path(copy, 'val'),
                           "no 'images' list")


def test_errors_outside_ours_keep_their_traceback(copy, tmp_path):
    """Only our own errors (and the annotation diagnosis of a data-loading
    failure, above) become one line: a ValueError from model code, here
    ECA's check of a kernel size, is shown with its traceback."""
    r = run_tool('train.py', CONFIG, '--work-dir', str(tmp_path / 'w'),
                 '--data-root', copy + '/', '--cfg-options', *TINY,
                 'model.backbone.arch=None', 'model.backbone.depth=18',
                 'model.backbone.k_size=4')
    assert r.returncode == 1, r.stderr[-3000:]
    assert 'Traceback' in r.stderr
    assert 'eca_mmdet/layers/eca.py' in r.stderr
    assert r.stderr.rstrip().splitlines()[-1].startswith(
        'ValueError: ECA k_size must be a positive odd int')
    assert not [ln for ln in r.stderr.splitlines()
                if ln.startswith('error:')]


# -- benign: handled as mmdet users expect ----------------------------------

def _break_benignly(root):
    """First image loses its objects; every other box becomes 0 or -5
    wide. Returns (image id without objects, number of boxes left valid)."""
    def fn(d):
        empty = d['images'][0]['id']
        d['annotations'] = [a for a in d['annotations']
                            if a['image_id'] != empty]
        for i, a in enumerate(d['annotations']):
            if i % 2 == 0:
                x, y, w, h = a['bbox']
                a['bbox'] = [x, y, 0 if i % 4 == 0 else -5, h]
        fn.empty = empty
        fn.valid = sum(1 for a in d['annotations'] if a['bbox'][2] > 0)
    edit(root, fn)
    return fn.empty, fn.valid


def test_images_without_objects_and_degenerate_boxes_are_skipped(copy):
    from mmdet.datasets import CocoDataset

    from eca_mmdet.datasets import CLASSES
    empty, valid = _break_benignly(copy)
    kw = dict(data_root=copy + '/', ann_file='annotations/train.json',
              data_prefix=dict(img='train/'), metainfo=dict(classes=CLASSES),
              pipeline=[])
    train = CocoDataset(filter_cfg=dict(filter_empty_gt=True, min_size=0),
                        **kw)
    infos = [train.get_data_info(i) for i in range(len(train))]
    assert len(infos) == 7 and empty not in [i['img_id'] for i in infos]
    assert sum(len(i['instances']) for i in infos) == valid
    # evaluation keeps every image, objects or not
    test = CocoDataset(test_mode=True, **kw)
    assert len(test) == 8


def test_training_with_benign_oddities_runs_with_finite_losses(copy,
                                                               tmp_path):
    _break_benignly(copy)
    work = tmp_path / 'w'
    r = run_tool('train.py', CONFIG, '--work-dir', str(work), '--data-root',
                 copy + '/', '--cfg-options', *TINY,
                 'default_hooks.logger.interval=1')
    assert r.returncode == 0, r.stderr[-3000:]
    losses = [float(tok.split(':')[1]) for ln in r.stdout.splitlines()
              if 'Epoch(train)' in ln for tok in ln.split('  ')
              if tok.strip().startswith('loss:')]
    assert losses and all(math.isfinite(v) for v in losses)
    assert osp.isfile(work / 'epoch_1.pth')
