"""Train -> save -> test -> infer on generated data, through the real
command-line tools (the suite's demo training, mmdet's own train tool, a
first run without COCO). Killed runs and resumes: test_kill_and_resume.py;
multi-process jobs: test_multi_process.py."""
import os
import os.path as osp
import re
import subprocess
import sys

from helpers import ROOT

CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')
TOOLS = osp.join(ROOT, 'tools')


def run(args, timeout=600, env=None, **kw):
    e = dict(os.environ, OMP_NUM_THREADS='1')
    e.update(env or {})
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT, **kw)


def test_train_save_test_with_coco_metrics(demo_run, tmp_path):
    """The suite's demo training (tools/train.py, 3 epochs) logged finite
    losses and COCO metrics and left its checkpoint; tools/test.py and
    tools/infer.py read it."""
    shapes, work, printed = demo_run
    ckpt = osp.join(work, 'epoch_3.pth')
    assert osp.isfile(ckpt)
    losses = [float(x) for x in re.findall(r' loss: (\d+\.\d+)', printed)]
    assert len(losses) == 12 and all(0 < v < 1e3 for v in losses), losses
    assert 'coco/segm_mAP' in printed  # validated each epoch
    work = str(tmp_path / 'w')

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


def test_external_config_with_mmdets_own_train_tool(demo_run, tmp_path):
    """A user's config outside this repository, only ``custom_imports=
    ['eca_mmdet']``, trains with mmdet's installed tools/train.py; our
    tools/train.py --resume and tools/test.py read what it wrote."""
    shapes = demo_run[0]
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
