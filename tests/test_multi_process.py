"""Multi-process jobs as users launch them: ``tools/dist_train.sh`` (torchrun,
gloo) and several tools at once, with a loopback server standing in for
Google Drive, https:// hosts and the Hugging Face hub, counting requests.

* one GET per cache entry for a whole job, none with a full cache, whatever
  the entry point (our tools' fetch at start-up, ``init_cfg`` and mmengine's
  checkpoint loader inside any process of a job);
* two download tools at once: one GET, the second waits and says so; a
  downloader killed mid-file leaves nothing that blocks or passes as
  complete;
* a rank that cannot start ends the job promptly (figures printed);
* a 2-process training killed with SIGKILL (one rank, the whole job) and
  resumed reaches the weights of an uninterrupted run, bitwise.
"""
import glob
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
from mmdet.registry import MODELS
from safetensors.torch import save_file

import eca_mmdet  # noqa: F401

from ckpt_utils import official_layout, timm_layout
from helpers import ROOT, randomize_bn
from servers import LoopbackServer, Route

TOOLS = osp.join(ROOT, 'tools')
DEMO = osp.join(ROOT, 'configs', 'demo', 'retinanet_eca_r18_shapes.py')
ARCH = 'eca_resnet18_k3577'
# the demo's half-width ECA-ResNet-18, as the released name's file holds it
BACKBONE = dict(type='ECAResNet', arch=ARCH, base_channels=32)
EPOCHS = 3  # 8 images, 2 processes x 2 images: 2 iterations per epoch


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env_with(**extra):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHON=sys.executable, PORT=str(free_port()))
    for key in ('ECA_MMDET_NO_DOWNLOAD', 'ECA_TEST_KILL', 'RANK'):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def released_bytes(tmp_path, model=None):
    model = model or randomize_bn(MODELS.build(dict(BACKBONE)))
    path = tmp_path / 'released.pth.tar'
    torch.save(official_layout(model.state_dict(), ARCH, fc_in=256), path,
               _use_new_zipfile_serialization=False)
    return path.read_bytes()


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    from eca_mmdet.datasets import generate_dataset
    root = str(tmp_path_factory.mktemp('shapes'))
    generate_dataset(root, num_train=8, num_val=2, seed=11, progress=False)
    return osp.join(root, '')


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    """The demo RetinaNet with the released name as its ImageNet init, and
    a module, loaded through ``custom_imports``, that kills or fails a rank
    at an exact point (``ECA_TEST_KILL``)."""
    d = tmp_path_factory.mktemp('configs')
    (d / 'eca_rank_faults.py').write_text(FAULTS)
    (d / 'pretrained.py').write_text(
        f'_base_ = [{DEMO!r}]\n'
        "model = dict(backbone=dict(init_cfg=dict(_delete_=True, "
        "type='Pretrained', checkpoint='eca://resnet18_k3577')))\n")
    (d / 'faults.py').write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['eca_mmdet', 'eca_mmdet.engine', "
        "'eca_rank_faults'], allow_failed_imports=False)\n")
    return d


FAULTS = '''
import os, signal, time
from mmengine.optim import OptimWrapper

KIND, _, ARG = os.environ.get('ECA_TEST_KILL', '').partition(':')
RANK = os.environ.get('RANK')
PIDS = os.environ.get('ECA_TEST_PIDS')
if PIDS:
    with open(os.path.join(PIDS, str(os.getpid())), 'w'):
        pass

if KIND == 'fail_at_start' and RANK == ARG:   # this rank cannot start
    with open(os.environ['ECA_TEST_FAILED_AT'], 'w') as f:
        f.write(repr(time.time()))
    from eca_mmdet.checkpoint import CheckpointError
    raise CheckpointError(f'rank {RANK}: injected failure at start-up')

if KIND in ('rank1', 'job'):
    _backward, _count = OptimWrapper.backward, [0]

    def backward(self, loss, **kwargs):
        _backward(self, loss, **kwargs)
        _count[0] += 1
        if _count[0] != int(ARG):
            return
        if KIND == 'rank1' and RANK == '1':
            os.kill(os.getpid(), signal.SIGKILL)
        if KIND == 'job' and RANK == '0':   # torchrun, every worker, at once
            os.kill(os.getppid(), signal.SIGKILL)
            for pid in map(int, os.listdir(PIDS)):
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
    OptimWrapper.backward = backward
'''


def dist_train(config, shapes, work, env, nproc=2, extra=(), wait=True):
    args = ['bash', osp.join(TOOLS, 'dist_train.sh'), str(config),
            str(nproc), '--work-dir', str(work), '--data-root', shapes,
            '--cfg-options', f'train_cfg.max_epochs={EPOCHS}',
            f'train_cfg.val_interval={EPOCHS + 1}',
            'randomness.seed=7', 'randomness.deterministic=True',
            'param_scheduler.0.end=2', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1', *extra]
    # the config's folder holds the fault module that it imports
    env = dict(env, PYTHONPATH=osp.dirname(str(config)))
    if not wait:
        return subprocess.Popen(args, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
    return subprocess.run(args, cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=600)


def release_after(route, seconds):
    """Let a held transfer finish ``seconds`` after it started holding."""
    def go():
        route.holding.wait(120)
        time.sleep(seconds)
        route.release.set()
    threading.Thread(target=go, daemon=True).start()


def test_dist_train_fetches_once_per_job(shapes, configs, tmp_path):
    """Two processes, an empty cache: one GET, and each of our messages
    once; a second job with the full cache: no request."""
    good = released_bytes(tmp_path)
    route = Route(good, hold_after=1024)  # both ranks reach the cache
    release_after(route, 3)
    cache = tmp_path / 'cache'
    with LoopbackServer({'/uc': route}) as srv:
        env = env_with(ECA_MMDET_CHECKPOINTS=cache,
                       ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        r = dist_train(configs / 'pretrained.py', shapes, tmp_path / 'w1',
                       env, extra=['train_cfg.max_epochs=1',
                                   'auto_scale_lr.base_batch_size=8'])
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-3000:]
        assert srv.gets('/uc') == 1
        for once in ('eca://resnet18_k3577: downloading',
                     'eca://resnet18_k3577: checked (',
                     'ECAResNet: loaded',
                     'batch: 2 process(es) x 2 images = 4 images per '
                     'iteration; config base_batch_size 8; lr 0.01 as in '
                     'the config, not scaled (--auto-scale-lr would use '
                     '0.005)'):
            assert out.count(once) == 1, (once, out[-3000:])
        # a gloo job of 2 processes, as mmengine counts it; only rank 0
        # writes the checkpoint and the log
        assert 'Distributed training: True' in out
        assert 'GPU number: 2' in out
        w1 = tmp_path / 'w1'
        assert [p.name for p in w1.glob('*.pth')] == ['epoch_1.pth']
        assert len(list(w1.glob('*/*.log'))) == 1
        r = dist_train(configs / 'pretrained.py', shapes, tmp_path / 'w2',
                       env, extra=['train_cfg.max_epochs=1'])
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        assert srv.gets('/uc') == 1  # the full cache: no request
    assert sorted(p.name for p in cache.iterdir() if p.suffix != '.lock') \
        == [f'{ARCH}.pth.tar', f'{ARCH}.pth.tar.sha256']


def test_auto_scale_lr_line(shapes, tmp_path):
    r = subprocess.run(
        [sys.executable, osp.join(TOOLS, 'train.py'), DEMO, '--work-dir',
         str(tmp_path / 'w'), '--data-root', shapes, '--auto-scale-lr',
         '--cfg-options', 'train_cfg.max_epochs=1',
         'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
         'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False'],
        cwd=ROOT, env=env_with(), capture_output=True, text=True,
        timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ('batch: 1 process(es) x 2 images = 2 images per iteration; '
            'config base_batch_size 4; lr 0.005: --auto-scale-lr scaled '
            "the config's 0.01 by 2/4") in r.stdout + r.stderr


IN_ANY_RUNNER = r'''
import sys
import torch
import torch.distributed as dist
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader

import eca_mmdet  # noqa: F401  (what custom_imports does in any runner)

dist.init_process_group('gloo')
init_default_scope('mmdet')
released, url, hub = sys.argv[1:]
# mmengine's loader (load_from, Pretrained of any module) on eca://
raw = CheckpointLoader.load_checkpoint(released, map_location='cpu')
total = [float(sum(v.double().sum() for v in raw['state_dict'].values()))]
for spec, cfg in ((url, dict(type='ECAResNet', arch='eca_resnet18_k3577',
                             base_channels=32)),
                  (hub, dict(type='ECAResNetV1d', depth=18,
                             k_size=(3, 5, 5, 7)))):
    model = MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained',
                                                 checkpoint=spec)))
    model.init_weights()       # the backbone's own strict init_cfg path
    total.append(float(sum(v.double().sum()
                           for v in model.state_dict().values())))
print(f'rank {dist.get_rank()} loaded {total}', flush=True)
dist.barrier()
dist.destroy_process_group()
'''


def test_init_cfg_and_mmengine_loader_fetch_once_in_any_job(tmp_path):
    """A foreign project's job (no tools of ours), three processes: eca://
    through mmengine's checkpoint loader, https:// and hf-hub: through
    backbones' init_cfg. One GET each; every rank loads the same weights."""
    released = released_bytes(tmp_path)
    v1d = randomize_bn(MODELS.build(dict(type='ECAResNetV1d', depth=18,
                                         k_size=(3, 5, 5, 7))))
    st = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in
               timm_layout(v1d.state_dict(), fc_in=512).items()}, str(st))
    resolve = '/timm/tiny.test_in1k/resolve/main/model.safetensors'
    routes = {'/uc': Route(released, hold_after=1024),
              '/w/eca18.pth': Route(released, hold_after=1024),
              resolve: Route(st.read_bytes(), hold_after=1024, headers={
                  'X-Repo-Commit': 'a' * 40, 'ETag': '"st-etag"'})}
    for route in routes.values():
        release_after(route, 2)
    script = tmp_path / 'job.py'
    script.write_text(IN_ANY_RUNNER)
    with LoopbackServer(routes) as srv:
        env = env_with(ECA_MMDET_CHECKPOINTS=tmp_path / 'eca',
                       TORCH_HOME=tmp_path / 'th', HF_HOME=tmp_path / 'hf',
                       HF_HUB_DISABLE_TELEMETRY=1, HF_ENDPOINT=srv.url(),
                       ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        r = subprocess.run(
            [sys.executable, '-m', 'torch.distributed.run',
             '--nproc_per_node=3', f'--master_port={env["PORT"]}',
             str(script), 'eca://resnet18_k3577', srv.url('/w/eca18.pth'),
             'hf-hub:timm/tiny.test_in1k'],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        assert [srv.gets(p) for p in routes] == [1, 1, 1], srv.requests
    loaded = sorted(line.split(' loaded ')[1] for line in
                    r.stdout.splitlines() if ' loaded [' in line)
    assert len(loaded) == 3 and len(set(loaded)) == 1, r.stdout


def download_tool(*names, out=None, env=None):
    return subprocess.Popen(
        [sys.executable, osp.join(TOOLS, 'download_checkpoints.py'), *names],
        stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)


def wait_for(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.05)


def test_two_download_tools_at_once_fetch_once(tmp_path):
    """The second tool waits for the first (and says so) while the first
    holds a transfer open, then uses the file the first checked."""
    route = Route(released_bytes(tmp_path), hold_after=1024)
    cache = tmp_path / 'cache'
    logs = [tmp_path / 'first.log', tmp_path / 'second.log']
    with LoopbackServer({'/uc': route}) as srv:
        env = env_with(ECA_MMDET_CHECKPOINTS=cache,
                       ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        with open(logs[0], 'w') as a, open(logs[1], 'w') as b:
            first = download_tool(ARCH, out=a, env=env)
            wait_for(route.holding.is_set, 'the first download')
            second = download_tool(ARCH, out=b, env=env)
            wait_for(lambda: 'waiting for it' in logs[1].read_text(),
                     'the second tool to wait')
            route.release.set()
            assert first.wait(300) == 0, logs[0].read_text()[-2000:]
            assert second.wait(300) == 0, logs[1].read_text()[-2000:]
        assert srv.gets('/uc') == 1
    for log in logs:
        assert f'eca://{ARCH}: {cache / ARCH}.pth.tar' in log.read_text()
    assert 'downloading' not in logs[1].read_text()


def test_killed_downloader_then_rerun(tmp_path):
    """SIGKILL mid-file: no cache file, no lock held; the rerun completes
    and removes the dead process's partial file."""
    good = released_bytes(tmp_path)
    cache = tmp_path / 'cache'
    name = f'{ARCH}.pth.tar'
    route = Route(good, hold_after=len(good) // 2)
    with LoopbackServer({'/uc': route}) as srv:
        env = env_with(ECA_MMDET_CHECKPOINTS=cache,
                       ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        first = download_tool(ARCH, out=subprocess.DEVNULL, env=env)
        wait_for(route.holding.is_set, 'the download to start')
        wait_for(lambda: glob.glob(str(cache / '*.partial*')),
                 'a partial file')
        first.kill()
        first.wait(60)
        route.release.set()
        assert not (cache / name).exists()
        assert glob.glob(str(cache / '*.partial*'))

        srv.routes['/uc'] = Route(good)
        with open(tmp_path / 'rerun.log', 'w') as log:
            assert download_tool(ARCH, out=log, env=env).wait(300) == 0
        assert srv.gets('/uc') == 2
    assert (cache / name).read_bytes() == good
    assert sorted(p.name for p in cache.iterdir() if p.suffix != '.lock') \
        == [name, name + '.sha256']


def test_a_rank_that_cannot_start_ends_the_job_promptly(shapes, configs,
                                                        tmp_path):
    """Rank 1 fails while rank 0 waits for it to join the process group;
    then every rank fails the same download (a quota page). Each job ends
    with the one-line error; the time from the failure to the job's exit is
    printed and bounded."""
    failed_at = tmp_path / 'failed_at'
    env = env_with(ECA_TEST_KILL='fail_at_start:1',
                   ECA_TEST_FAILED_AT=failed_at)
    r = dist_train(configs / 'faults.py', shapes, tmp_path / 'w1', env)
    exited = time.time()
    assert r.returncode != 0
    assert 'error: rank 1: injected failure at start-up' in r.stderr
    one_rank = exited - float(failed_at.read_text())

    route = Route(b'<html>Too many users have viewed or downloaded this '
                  b'file recently</html>')
    with LoopbackServer({'/uc': route}) as srv:
        env = env_with(ECA_MMDET_CHECKPOINTS=tmp_path / 'cache',
                       ECA_MMDET_DRIVE_URL=srv.url('/uc?id={id}'))
        started = time.time()
        r = dist_train(configs / 'pretrained.py', shapes, tmp_path / 'w2',
                       env)
        download_failed = time.time() - started
        assert r.returncode != 0
        assert 'error: could not fetch eca://resnet18_k3577' in r.stderr
        assert 'HTML page' in r.stderr
        assert 1 <= srv.gets('/uc') <= 2
    print(f'\nexit after one rank failed at start-up: {one_rank:.1f} s; '
          f'whole job with a failing download: {download_failed:.1f} s')
    assert one_rank < 60  # torchrun's monitor ends it, not a timeout


def alive(pid):
    """Whether ``pid`` runs (a killed orphan may stay a zombie until its
    new parent reaps it)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def final_state(work):
    from eca_mmdet.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(osp.join(work, f'epoch_{EPOCHS}.pth'))
    return ckpt['state_dict'], ckpt['optimizer']['state']


@pytest.fixture(scope='module')
def uninterrupted(shapes, configs, tmp_path_factory):
    work = tmp_path_factory.mktemp('uninterrupted')
    r = dist_train(configs / 'faults.py', shapes, work, env_with())
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return final_state(work)


@pytest.mark.parametrize('kill', ['rank1', 'job'])
def test_killed_two_process_run_resumes_bitwise(shapes, configs,
                                                uninterrupted, tmp_path,
                                                kill):
    """SIGKILL after the backward pass of iteration 3 (epoch 2 of 3): of
    rank 1 alone (torchrun then stops rank 0), or of torchrun and both
    ranks at once. ``--resume`` continues from epoch 1 to the same final
    weights and optimizer state as the uninterrupted run."""
    work = tmp_path / 'w'
    pids = tmp_path / 'pids'
    pids.mkdir()
    job = dist_train(configs / 'faults.py', shapes, work, wait=False,
                     env=env_with(ECA_TEST_KILL=f'{kill}:3',
                                  ECA_TEST_PIDS=pids))
    out, _ = job.communicate(timeout=600)
    if kill == 'job':  # bash reports torchrun's SIGKILL
        assert job.returncode == 128 + signal.SIGKILL, out[-3000:]
    else:
        assert 'Signal 9 (SIGKILL) received by PID' in out, out[-3000:]
    assert (work / 'epoch_1.pth').is_file()
    assert not (work / 'epoch_2.pth').exists()
    # the kernel may still be tearing a killed rank down: poll, bounded
    deadline = time.monotonic() + 60
    while True:
        running = [pid for pid in map(int, os.listdir(pids)) if alive(pid)]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not running, f'ranks still running after 60 s: {running}'

    r = dist_train(configs / 'faults.py', shapes, work, env_with(),
                   extra=['--resume'])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert 'resumed epoch: 1' in out
    (sd, opt), (sd_ref, opt_ref) = final_state(work), uninterrupted
    assert sd.keys() == sd_ref.keys()
    differ = [k for k in sd if not torch.equal(sd[k], sd_ref[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    for p, s in opt.items():
        for k, v in s.items():
            assert torch.equal(v, opt_ref[p][k]), (p, k)
