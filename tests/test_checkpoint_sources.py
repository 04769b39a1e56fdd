"""Weights from where users get them, against real servers on 127.0.0.1:
safetensors in timm's layout, https:// URLs in init_cfg and load_from,
eca:// fetched from a Google Drive stand-in with gdown, and timm's weights
from a Hugging Face hub stand-in with huggingface_hub."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from safetensors.torch import save_file

import eca_mmdet  # noqa: F401
from eca_mmdet.checkpoint import RELEASED_CHECKPOINTS, CheckpointError

from ckpt_utils import official_layout, timm_layout
from helpers import ROOT, randomize_bn
from servers import LoopbackServer, Route


def _model(**cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _random_model(**cfg):
    model = randomize_bn(_model(**cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('eca.conv.weight'):
                p.copy_(torch.randn_like(p))
    return model.eval()


def _outputs(model):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval()(x)


def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def _pretrained(checkpoint, **cfg):
    return _model(init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
                  **cfg)


V1D_50 = dict(type='ECAResNetV1d', depth=50, k_size=None)


def test_safetensors_in_timms_layout_equals_pth(tmp_path):
    """timm's hub format, written by safetensors' own save_file with
    timm's key names, loads like the same weights saved by torch.save."""
    src = _random_model(**V1D_50)
    sd = {k: v.contiguous() for k, v in timm_layout(src.state_dict()).items()}
    assert 'conv1.0.weight' in sd and 'layer1.0.se.conv.weight' in sd
    save_file(sd, str(tmp_path / 'model.safetensors'))
    torch.save(sd, tmp_path / 'model.pth')
    from_st = _pretrained(str(tmp_path / 'model.safetensors'), **V1D_50)
    from_pth = _pretrained(str(tmp_path / 'model.pth'), **V1D_50)
    _same(_outputs(from_st), _outputs(src))
    _same(_outputs(from_pth), _outputs(from_st))
    # a damaged safetensors file is our error, not the library's
    data = (tmp_path / 'model.safetensors').read_bytes()
    (tmp_path / 'cut.safetensors').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='not a valid safetensors'):
        _pretrained(str(tmp_path / 'cut.safetensors'), **V1D_50)


R18 = dict(type='ECAResNet', arch='eca_resnet18_k3577')


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty caches for eca://, torch hub and the Hugging Face hub."""
    for var, sub in (('ECA_MMDET_CHECKPOINTS', 'eca'), ('TORCH_HOME', 'th'),
                     ('HF_HOME', 'hf')):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv('ECA_MMDET_NO_DOWNLOAD', raising=False)
    return tmp_path


def _official_bytes(tmp_path, arch, depth=18, **cfg):
    src = _random_model(type='ECAResNet', depth=depth, **cfg)
    path = tmp_path / f'{arch}.src'
    torch.save(official_layout(src.state_dict(), arch, fc_in=512), path,
               _use_new_zipfile_serialization=False)  # as in 2019
    return src, path.read_bytes()


def test_https_url_cached_checked_and_read_safely(caches):
    src, good = _official_bytes(caches, 'x', k_size=(3, 5, 7, 7))
    routes = {'/w/eca18.pth': Route(good),
              '/w/cut.pth': Route(good, cut_after=len(good) // 3),
              '/w/page.pth': Route(b'<html>Sign in to continue</html>'),
              '/w/eca18-deadbeef.pth': Route(good)}
    cache = caches / 'th' / 'hub' / 'checkpoints'
    with LoopbackServer(routes) as srv:
        model = _pretrained(srv.url('/w/eca18.pth'), **R18)
        _same(_outputs(model), _outputs(src))
        assert (cache / 'eca18.pth').read_bytes() == good
        assert (cache / 'eca18.pth.sha256').is_file()
        _pretrained(srv.url('/w/eca18.pth'), **R18)  # from the cache
        assert srv.gets('/w/eca18.pth') == 1

        for path, match in (('/w/cut.pth', 'could not fetch'),
                            ('/w/page.pth', 'HTML page'),
                            ('/w/missing.pth', '404'),
                            ('/w/eca18-deadbeef.pth', 'hash')):
            with pytest.raises(CheckpointError, match=match):
                _pretrained(srv.url(path), **R18)
            assert not (cache / osp.basename(path)).exists(), path
        assert sorted(p.name for p in cache.iterdir()
                      if p.suffix != '.lock') == [
            'eca18.pth', 'eca18.pth.sha256']  # no partial files left
        # the interrupted transfer, rerun once the server sends it whole
        srv.routes['/w/cut.pth'] = Route(good)
        _pretrained(srv.url('/w/cut.pth'), **R18)

        # a cached file that changed since it was downloaded
        (cache / 'eca18.pth').write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        with pytest.raises(CheckpointError, match='changed since it was '
                                                  'downloaded'):
            _pretrained(srv.url('/w/eca18.pth'), **R18)


def test_load_from_url_goes_through_the_safe_loader(caches, capfd):
    """mmengine's http loader (load_from, --resume) is replaced by ours
    with eca_mmdet.engine: a served TorchScript model is refused."""
    from mmengine.runner.checkpoint import _load_checkpoint

    import eca_mmdet.engine  # noqa: F401

    from fuzzing import MARKER, TorchScriptMarker
    ts = caches / 'ts.pth'
    torch.jit.save(torch.jit.script(TorchScriptMarker()), str(ts))
    with LoopbackServer({'/ts.pth': Route(ts.read_bytes()),
                         '/ok.pth': Route(b'')}) as srv:
        with pytest.raises(CheckpointError, match='TorchScript archive'):
            _load_checkpoint(srv.url('/ts.pth'), map_location='cpu')
        torch.save({'state_dict': {'w': torch.ones(2)}}, caches / 'ok.pth')
        srv.routes['/ok.pth'] = Route((caches / 'ok.pth').read_bytes())
        out = _load_checkpoint(srv.url('/ok.pth'), map_location='cpu')
        assert torch.equal(out['state_dict']['w'], torch.ones(2))
    assert MARKER not in capfd.readouterr().out


def test_eca_name_fetched_from_drive_with_gdown(caches, monkeypatch):
    arch = 'eca_resnet18_k3577'
    src, good = _official_bytes(caches, arch, k_size=(3, 5, 7, 7))
    _, wrong_k = _official_bytes(caches, arch, k_size=(3, 3, 5, 7))
    drive_id = RELEASED_CHECKPOINTS[arch]['drive']
    cached = caches / 'eca' / f'{arch}.pth.tar'
    with LoopbackServer({'/uc': Route(good)}) as srv:
        monkeypatch.setenv('ECA_MMDET_DRIVE_URL', srv.url('/uc?id={id}'))
        # downloading off: one message with both links and the path
        monkeypatch.setenv('ECA_MMDET_NO_DOWNLOAD', '1')
        with pytest.raises(CheckpointError) as e:
            _pretrained('eca://resnet18_k3577', **R18)
        for text in (f'drive.google.com/file/d/{drive_id}',
                     'pan.baidu.com/s/1Bh9J7VY2tYj5oEvEEqvdhQ', 'utsy',
                     str(cached)):
            assert text in str(e.value)
        assert srv.requests == []
        monkeypatch.delenv('ECA_MMDET_NO_DOWNLOAD')

        # wrong content (other kernel sizes, a quota page): never cached
        for body, match in ((wrong_k, 'is not eca_resnet18_k3577'),
                            (b'<html>Too many users have viewed or '
                             b'downloaded this file recently</html>',
                             'HTML page')):
            srv.routes['/uc'] = Route(body)
            with pytest.raises(CheckpointError, match=match) as e:
                _pretrained('eca://resnet18_k3577', **R18)
            assert 'pan.baidu.com' in str(e.value)
            assert not cached.exists()
        srv.routes['/uc'] = Route(good)
        model = _pretrained('eca://resnet18_k3577', **R18)
        _same(_outputs(model), _outputs(src))
        assert cached.read_bytes() == good
        assert ('GET', f'/uc?id={drive_id}') in srv.requests
        n = srv.gets('/uc')
        _pretrained('eca://resnet18_k3577', **R18)  # the cache, verified
        assert srv.gets('/uc') == n
    assert sorted(n for n in os.listdir(caches / 'eca')
                  if not n.endswith('.lock')) == [
        f'{arch}.pth.tar', f'{arch}.pth.tar.sha256']


HUB_SCRIPT = r'''
import sys, torch
import eca_mmdet  # noqa
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from eca_mmdet.checkpoint import CheckpointError
init_default_scope('mmdet')
spec, want = sys.argv[1], sys.argv[2]
m = MODELS.build(dict(type='ECAResNetV1d', depth=18, k_size=(3, 5, 5, 7),
                      init_cfg=dict(type='Pretrained', checkpoint=spec)))
try:
    m.init_weights()
except CheckpointError as e:
    print('CheckpointError:', e)
    sys.exit(3)
x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    out = m.eval()(x)
ref = torch.load(want, weights_only=True)
print('equal' if all(torch.equal(a, b) for a, b in zip(out, ref)) else 'DIFF')
'''


HUB_RESOLVE = '/timm/tiny.test_in1k/resolve/main/model.safetensors'


def _hub_files(caches):
    """A random ECAResNetV1d-18 as timm's hub file (``model.safetensors``
    bytes), its outputs saved as ``want.pt`` and HUB_SCRIPT as ``hub.py``
    (which loads the hub spec it is given and compares)."""
    src = _random_model(type='ECAResNetV1d', depth=18, k_size=(3, 5, 5, 7))
    st = caches / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in
               timm_layout(src.state_dict(), fc_in=512).items()}, str(st))
    torch.save(_outputs(src), caches / 'want.pt')
    script = caches / 'hub.py'
    script.write_text(HUB_SCRIPT)
    return st.read_bytes(), script


def test_timm_weights_from_a_hub_stand_in(caches):
    """huggingface_hub itself, pointed at a loopback endpoint with
    HF_ENDPOINT, fetches model.safetensors; HF_HUB_OFFLINE then reads the
    cache, and an empty cache offline is one clear error."""
    data, script = _hub_files(caches)
    resolve = HUB_RESOLVE
    headers = {'X-Repo-Commit': 'a' * 40, 'ETag': '"st-etag"'}

    def run(env, spec='timm://tiny.test_in1k'):
        return subprocess.run(
            [sys.executable, str(script), spec, str(caches / 'want.pt')],
            env={**os.environ, 'HF_HUB_DISABLE_TELEMETRY': '1', **env},
            capture_output=True, text=True, timeout=300, cwd=ROOT)

    with LoopbackServer({resolve: Route(data, headers=headers)
                         }) as srv:
        endpoint = {'HF_ENDPOINT': srv.url()}
        r = run({**endpoint, 'HF_HUB_OFFLINE': '1'})
        assert r.returncode == 3, r.stderr[-2000:]
        assert 'Hugging Face hub' in r.stdout and \
            'tools/download_checkpoints.py' in r.stdout
        r = run(endpoint, spec='hf-hub:timm/tiny.test_in1k')
        assert r.stdout.strip().endswith('equal'), r.stdout + r.stderr[-2000:]
        assert srv.gets(resolve) == 1
        r = run({**endpoint, 'HF_HUB_OFFLINE': '1'})
        assert r.stdout.strip().endswith('equal'), r.stdout + r.stderr[-2000:]
        assert srv.gets(resolve) == 1
    assert (caches / 'hf' / 'hub' / 'models--timm--tiny.test_in1k').is_dir()
    # our lock stays out of the repository listing of the hub's cache
    from huggingface_hub import scan_cache_dir
    scan = scan_cache_dir(caches / 'hf' / 'hub')
    assert not scan.warnings, scan.warnings
    assert [repo.repo_id for repo in scan.repos] == ['timm/tiny.test_in1k']


def test_hub_cache_checked_against_the_hubs_sha256(caches):
    """An LFS file's blob in the hub's cache is named by its sha256: it is
    verified on every use, and a changed blob is refused, not loaded."""
    import hashlib
    data, script = _hub_files(caches)
    digest = hashlib.sha256(data).hexdigest()
    resolve = HUB_RESOLVE
    headers = {'X-Repo-Commit': 'b' * 40, 'ETag': f'"{digest}"'}
    with LoopbackServer({resolve: Route(data, headers=headers)}) as srv:
        def run():
            return subprocess.run(
                [sys.executable, str(script), 'timm://tiny.test_in1k',
                 str(caches / 'want.pt')], capture_output=True, text=True,
                env={**os.environ, 'HF_HUB_DISABLE_TELEMETRY': '1',
                     'HF_ENDPOINT': srv.url()}, timeout=300, cwd=ROOT)
        r = run()
        assert r.stdout.strip().endswith('equal'), r.stdout + r.stderr
        blob = (caches / 'hf' / 'hub' / 'models--timm--tiny.test_in1k' /
                'blobs' / digest)
        assert blob.is_file()
        assert run().stdout.strip().endswith('equal')  # verified, cached
        blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        r = run()
        assert r.returncode == 3, r.stdout + r.stderr[-2000:]
        assert 'changed since it was downloaded' in r.stdout
        assert srv.gets(resolve) == 1


def test_download_tool_and_names(caches, monkeypatch):
    """tools/download_checkpoints.py fetches named files ahead of time;
    unknown schemes and bad names are clear errors."""
    arch = 'eca_resnet18_k3577'
    _, good = _official_bytes(caches, arch, k_size=(3, 5, 7, 7))
    with LoopbackServer({'/uc': Route(good)}) as srv:
        env = {**os.environ, 'ECA_MMDET_DRIVE_URL': srv.url('/uc?id={id}')}
        r = subprocess.run(
            [sys.executable,
             osp.join(ROOT, 'tools', 'download_checkpoints.py'), arch,
             'eca://resnet34_k3357'], env=env, capture_output=True,
            text=True, timeout=300)
    assert r.returncode == 1  # the second is served ResNet-18's file
    assert f'eca://{arch}: {caches / "eca" / arch}.pth.tar' in r.stdout
    assert 'error: eca://resnet34_k3357:' in r.stderr
    assert 'is not eca_resnet34_k3357' in r.stderr
    for spec, match in (('s3://bucket/x.pth', 'unknown scheme'),
                        ('timm://resnet50', 'pretrained tag'),
                        ('hf-hub:noslash', 'OWNER/NAME'),
                        ('eca://../etc/passwd', 'not allowed')):
        with pytest.raises(CheckpointError, match=match):
            _pretrained(spec, **R18)
