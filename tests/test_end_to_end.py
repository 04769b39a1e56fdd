"""Train -> save -> test -> interrupt/resume -> distributed, on generated
data, through the real command-line tools."""
import glob
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT

CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
TOOLS = osp.join(ROOT, 'tools')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from eca_mmdet.datasets import generate_dataset
    root = str(tmp_path_factory.mktemp('shapes'))
    generate_dataset(root, num_train=16, num_val=8, seed=3, progress=False)
    return osp.join(root, '')


def tiny_options(root, epochs=1, extra=()):
    return ['--data-root', root, '--cfg-options',
            f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}',
            'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1', *extra]


def run(args, timeout=600, env=None, **kw):
    e = dict(os.environ, OMP_NUM_THREADS='1')
    e.update(env or {})
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT, **kw)


def test_train_save_test_with_coco_metrics(shapes, tmp_path):
    work = str(tmp_path / 'w')
    r = run([sys.executable, f'{TOOLS}/train.py', CONFIG, '--work-dir', work,
             *tiny_options(shapes, epochs=2)])
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)
    # losses are logged and finite
    assert re.search(r'loss: \d+\.\d+', r.stdout + r.stderr)

    out_pkl = str(tmp_path / 'res.pkl')
    r = run([sys.executable, f'{TOOLS}/test.py', CONFIG, ckpt, '--work-dir',
             work, '--out', out_pkl, '--classwise',
             '--data-root', shapes, '--cfg-options',
             'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False'])
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
                'coco/bbox_mAP_s', 'coco/bbox_mAP_m', 'coco/bbox_mAP_l',
                'coco/segm_mAP'):
        assert key in out
    assert 'circle' in out  # per-class table
    assert osp.getsize(out_pkl) > 0
    fast = dict(re.findall(r'(coco/\w+)=([\d.-]+)', out))

    # the same through pycocotools (mmdet's CocoMetric): the same numbers
    r = run([sys.executable, f'{TOOLS}/test.py', CONFIG, ckpt, '--work-dir',
             work, '--data-root', shapes, '--classwise', '--cfg-options',
             'test_evaluator.type=CocoMetric',
             'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False'])
    assert r.returncode == 0, r.stderr[-3000:]
    slow = dict(re.findall(r'(coco/\w+)=([\d.-]+)', r.stdout))
    assert len(slow) == 12 + 4 and slow == fast  # + classwise

    # tools/infer.py: pictures and one JSON of predictions per image
    out_dir = tmp_path / 'infer'
    r = run([sys.executable, f'{TOOLS}/infer.py', osp.join(shapes, 'val'),
             CONFIG, ckpt, '--out-dir', str(out_dir), '--score-thr', '0'])
    assert r.returncode == 0, r.stderr[-3000:]
    images = sorted(os.listdir(osp.join(shapes, 'val')))
    assert sorted(os.listdir(out_dir / 'vis')) == images
    import json

    import mmcv
    found = 0
    for name in images:
        pic = mmcv.imread(str(out_dir / 'vis' / name))
        assert pic.shape == mmcv.imread(osp.join(shapes, 'val', name)).shape
        with open(out_dir / 'preds' / (osp.splitext(name)[0] + '.json')) as f:
            pred = json.load(f)
        n = len(pred['scores'])
        assert len(pred['labels']) == len(pred['bboxes']) == n
        assert len(pred['masks']) == n
        found += n
        assert all(0 <= label < 4 for label in pred['labels'])
        assert all(len(box) == 4 for box in pred['bboxes'])
    assert found > 0
    assert f'{len(images)} image(s)' in r.stdout


def test_interrupt_and_resume(shapes, tmp_path):
    work = str(tmp_path / 'w')
    args = [sys.executable, f'{TOOLS}/train.py', CONFIG, '--work-dir', work,
            *tiny_options(shapes, epochs=3)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if osp.isfile(osp.join(work, 'epoch_1.pth')):
            time.sleep(1.0)  # let the file finish
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    assert not osp.isfile(osp.join(work, 'epoch_3.pth'))

    r = run(args + ['--resume'])
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert re.search(r'resumed epoch: [12], iter: \d+', out), out[-2000:]
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_distributed_two_processes_gloo(shapes, tmp_path):
    work = str(tmp_path / 'w')
    r = run(['bash', f'{TOOLS}/dist_train.sh', CONFIG, '2', '--work-dir',
             work, *tiny_options(shapes, epochs=1,
                                 extra=['train_dataloader.batch_size=2'])],
            env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert 'Distributed training: True' in out
    assert 'GPU number: 2' in out  # mmengine's count of processes
    assert glob.glob(osp.join(work, 'epoch_1.pth')) == \
        [osp.join(work, 'epoch_1.pth')]
    # only rank 0 writes checkpoints and logs
    assert len(glob.glob(osp.join(work, '*.pth'))) == 1
    assert len(glob.glob(osp.join(work, '*', '*.log'))) == 1


def test_missing_coco_stops_with_one_clear_message(tmp_path):
    """A new user's first run: the cache is empty (a loopback server stands
    in for Google Drive), the ImageNet weights arrive and are checked, then
    training stops at the missing COCO with one message; a second run uses
    the cache; with downloading off, one message with both links."""
    import torch
    from mmdet.registry import MODELS

    import eca_mmdet  # noqa: F401

    from ckpt_utils import official_layout
    from servers import LoopbackServer, Route
    arch = 'eca_resnet101_k3357'
    src = tmp_path / 'src.pth.tar'
    torch.save(official_layout(MODELS.build(dict(
        type='mmdet.ECAResNet', arch=arch)).state_dict(), arch), src,
        _use_new_zipfile_serialization=False)
    cache = tmp_path / 'cache'
    cmd = [sys.executable, f'{TOOLS}/train.py',
           osp.join(ROOT, 'configs', 'faster_rcnn_eca_r101.py'),
           '--work-dir', str(tmp_path / 'w'), '--data-root',
           str(tmp_path / 'nowhere')]
    with LoopbackServer({'/uc': Route(src.read_bytes())}) as srv:
        env = dict(ECA_MMDET_CHECKPOINTS=str(cache),
                   ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        for attempt in (1, 2):
            r = run(cmd, env=env)
            assert r.returncode == 2, r.stderr[-3000:]
            assert 'annotation file not found' in r.stderr
            assert str(tmp_path / 'nowhere') in r.stderr
            assert '--data-root' in r.stderr
            assert 'Traceback' not in r.stderr
            assert srv.gets('/uc') == 1  # downloaded once, then the cache
        assert (cache / f'{arch}.pth.tar').read_bytes() == src.read_bytes()
        assert (cache / f'{arch}.pth.tar.sha256').is_file()

        r = run(cmd, env=dict(env, ECA_MMDET_CHECKPOINTS=str(tmp_path / 'e'),
                              ECA_MMDET_NO_DOWNLOAD='1'))
    assert r.returncode == 2
    (line, ) = [x for x in r.stderr.splitlines() if x.startswith('error:')]
    for text in ('downloading is off', 'drive.google.com/file/d/',
                 'pan.baidu.com/s/', 'extraction code iov1',
                 str(tmp_path / 'e' / f'{arch}.pth.tar')):
        assert text in line
    assert 'Traceback' not in r.stderr


def test_external_config_with_mmdets_own_train_tool(shapes, tmp_path):
    """A user's config outside this repository, only ``custom_imports=
    ['eca_mmdet']``, trains with mmdet's installed tools/train.py; our
    tools/train.py --resume and tools/test.py read what it wrote."""
    import mmdet
    mm_train = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                        'train.py')
    assert osp.isfile(mm_train)
    cfg = tmp_path / 'my_retinanet.py'
    cfg.write_text(f'''
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['eca_mmdet'], allow_failed_imports=False)
model = dict(
    backbone=dict(type='ECAResNet', depth=18, k_size=(3, 5, 7, 7),
                  norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
    bbox_head=dict(num_classes=4, in_channels=32, feat_channels=32,
                   stacked_convs=1))
metainfo = dict(classes=('circle', 'rectangle', 'triangle', 'cross'))
pipe = [dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs')]
test_pipe = [dict(type='LoadImageFromFile'),
             dict(type='Resize', scale=(128, 128), keep_ratio=True),
             dict(type='LoadAnnotations', with_bbox=True),
             dict(type='PackDetInputs', meta_keys=(
                 'img_id', 'img_path', 'ori_shape', 'img_shape',
                 'scale_factor'))]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{shapes}', metainfo=metainfo,
                 ann_file='annotations/train.json',
                 data_prefix=dict(img='train/'), pipeline=pipe))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{shapes}', metainfo=metainfo,
                 ann_file='annotations/val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipe))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{shapes}annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=5)
''')
    r = run([sys.executable, mm_train, str(cfg), '--work-dir',
             str(tmp_path / 'w')])
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = tmp_path / 'w' / 'epoch_1.pth'
    assert osp.isfile(ckpt)
    assert 'ECAResNet' in (r.stdout + r.stderr)
    # our tools read the checkpoint mmdet's own tool wrote
    r = run([sys.executable, osp.join(TOOLS, 'train.py'), str(cfg),
             '--work-dir', str(tmp_path / 'w'), '--resume', str(ckpt),
             '--cfg-options', 'train_cfg.max_epochs=2'])
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'resumed epoch: 1' in (r.stdout + r.stderr)
    assert osp.isfile(tmp_path / 'w' / 'epoch_2.pth')
    r = run([sys.executable, osp.join(TOOLS, 'test.py'), str(cfg),
             str(ckpt), '--work-dir', str(tmp_path / 't')])
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert f'Load checkpoint from {ckpt}' in out
    assert 'Epoch(test) [4/4]' in out  # 8 val images, batch 2
