"""The offline half of tools/offline_install.py: a fresh venv installs from a
gathered folder with no index reachable and passes the import check.

The folder is gathered for this machine's Python and platform (``gather``
needs the package index, as it does for a user), with torch added, since
this fresh venv stands in for a node that brings its own torch. mmcv's
build from source takes 20-30 minutes on this CPU, so the folder gets the
mmcv wheel of the running environment, repacked from its installed files,
where ``install`` keeps the wheels it builds (``built/torch-<version>/``):
``install`` takes it from there as it would on a second node.
"""
import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import ROOT

TOOL = os.path.join(ROOT, 'tools', 'offline_install.py')


def repack_installed(dist_name, dest):
    """A wheel of the installed distribution ``dist_name`` (its files as
    installed, RECORD rewritten by ``wheel pack``)."""
    dist = importlib.metadata.distribution(dist_name)
    stage = os.path.join(dest, 'stage')
    site = str(dist.locate_file(''))
    for f in dist.files:
        src = os.path.normpath(str(dist.locate_file(f)))
        if not src.startswith(site) or '__pycache__' in src \
                or f.name == 'RECORD':
            continue  # scripts outside site-packages, caches
        out = os.path.join(stage, os.path.relpath(src, site))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copy2(src, out)
    subprocess.run([sys.executable, '-m', 'wheel', 'pack', stage, '-d',
                    dest], check=True, capture_output=True)
    shutil.rmtree(stage)


def offline_env(tmp_path):
    """No index reachable: pip's configuration files ignored, its index a
    closed port on 127.0.0.1, no find-links but the folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL='http://127.0.0.1:9/',
               PIP_RETRIES='0', PIP_TIMEOUT='2')
    return env


@pytest.mark.skipif(
    torch.version.cuda is not None,
    reason=f'torch {torch.__version__} is a CUDA build: the stand-in node '
    f'would need its nvidia-* wheels (gigabytes); make test runs this with '
    f'its CPU torch')
def test_fresh_venv_installs_from_the_folder_without_an_index(tmp_path):
    bundle = tmp_path / 'bundle'
    r = subprocess.run(
        [sys.executable, TOOL, 'gather', str(bundle), '--extra',
         f'torch=={torch.__version__.split("+")[0]}'],
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (bundle / 'mmcv-2.1.0.tar.gz').is_file()
    assert (bundle / 'offline_install.py').is_file()
    built = bundle / 'built' / f'torch-{torch.__version__}'
    built.mkdir(parents=True)
    repack_installed('mmcv', str(built))

    venv = tmp_path / 'node'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    env = offline_env(tmp_path)
    # the copy inside the folder, run by the fresh Python, as on a node
    r = subprocess.run([python, str(bundle / 'offline_install.py'),
                        'install', str(bundle)], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert 'ready: torch' in out and '| mmcv 2.1.0' in out
    assert 'building mmcv' not in out  # taken from built/
    # the installed stack builds and runs an ECA-ResNet, away from the repo
    check = ('import torch, eca_mmdet; from mmdet.registry import MODELS; '
             'm = MODELS.build(dict(type="ECAResNet", depth=50, '
             'k_size=None)).eval(); '
             'print([tuple(o.shape) for o in m(torch.zeros(1, 3, 64, 64))]); '
             'print(eca_mmdet.__file__)')
    r = subprocess.run([python, '-c', check], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '(1, 2048, 2, 2)' in r.stdout
    assert str(venv) in r.stdout  # the wheel's copy, not the checkout


def test_wrong_python_is_a_clear_error(tmp_path):
    bundle = tmp_path / 'b'
    bundle.mkdir()
    (bundle / 'bundle.json').write_text('{"python": "2.7"}')
    r = subprocess.run([sys.executable, TOOL, 'install', str(bundle)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert 'holds wheels for Python 2.7' in r.stderr
    assert 'Traceback' not in r.stderr


@pytest.mark.parametrize('glibc,first,last', [
    ('2.28', 'manylinux_2_28_x86_64', 'manylinux1_x86_64'),
    ('2.17', 'manylinux_2_17_x86_64', 'manylinux1_x86_64')])
def test_platform_tags_include_older_glibc(glibc, first, last):
    sys.path.insert(0, os.path.dirname(TOOL))
    try:
        from offline_install import manylinux_platforms
    finally:
        sys.path.pop(0)
    tags = manylinux_platforms(glibc, 'x86_64')
    assert tags[0] == first and tags[-1] == last
    assert 'manylinux2014_x86_64' in tags
    assert ('manylinux_2_28_x86_64' in tags) == (glibc == '2.28')


def test_gather_leaves_out_what_the_node_has(tmp_path):
    """A node's freeze: numpy at the node's version, not downloaded; its
    local CUDA torch build no constraint at all; the rest at this
    environment's versions, as wheels for the node's Python 3.12."""
    freeze = tmp_path / 'node.txt'
    freeze.write_text('numpy==2.2.6\ntorch==2.11.0+cu130\n'
                      'some-conda-pkg @ file:///opt/conda/x\n')
    bundle = tmp_path / 'b'
    r = subprocess.run(
        [sys.executable, TOOL, 'gather', str(bundle), '--python', '3.12',
         '--glibc', '2.28', '--arch', 'x86_64', '--node-freeze',
         str(freeze)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    names = os.listdir(bundle)
    assert not [n for n in names if n.startswith('numpy-')]
    constraints = (bundle / 'constraints.txt').read_text().splitlines()
    assert 'numpy==2.2.6' in constraints
    assert not [c for c in constraints if c.split('==')[0] == 'torch']
    assert f'mmengine=={importlib.metadata.version("mmengine")}' in \
        constraints
    wheels = [n for n in names if n.endswith('.whl')]
    assert any(n.startswith('mmdet-3.3.0') for n in wheels)
    # CPython wheels are for 3.12 (or its stable ABI), all for Linux x86_64
    tags = [n[:-4].split('-')[-3:] for n in wheels]
    cpython = [(py, abi) for py, abi, _ in tags if py.startswith('cp')]
    assert cpython and all(py == 'cp312' or abi == 'abi3'
                           for py, abi in cpython), cpython
    assert all(plat == 'any' or plat.endswith('x86_64')
               for _, _, plat in tags)
