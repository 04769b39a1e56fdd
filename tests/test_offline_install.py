"""tools/offline_install.py, piece by piece, with pip, torch's GPUs and the
node's cgroups stood in for (a real install into a fresh venv takes minutes
and gigabytes): what ``gather`` asks pip for and keeps, which mmcv wheel
``install`` reuses or builds (keyed by torch, CUDA and architectures, the
highest as PTX) and with how many jobs, and the check that launches mmcv's
NMS and RoIAlign on every GPU, and what gpu_check.sh makes of it."""
import importlib.metadata
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import types
import zipfile

import pytest
import torch

from helpers import ROOT

TOOL = os.path.join(ROOT, 'tools', 'offline_install.py')
HERE = '%d.%d' % sys.version_info[:2]


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('offline_install', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_on_the_standard_library_alone():
    """What a bare node Python runs first: no site-packages at all."""
    r = subprocess.run([sys.executable, '-I', '-S', TOOL, 'install', '-h'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '--cuda-archs' in r.stdout


def test_wrong_python_is_a_clear_error(tmp_path):
    bundle = tmp_path / 'b'
    bundle.mkdir()
    (bundle / 'bundle.json').write_text('{"python": "2.7"}')
    r = subprocess.run([sys.executable, TOOL, 'install', str(bundle)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert 'holds wheels for Python 2.7' in r.stderr
    assert 'Traceback' not in r.stderr


def test_option_names_say_which_architecture(tool, capsys):
    args = tool.parse_args(['gather', 'd', '--platform-arch', 'aarch64'])
    assert args.platform_arch == 'aarch64'
    args = tool.parse_args(['install', 'd', '--cuda-archs', '8.0;9.0+PTX'])
    assert args.cuda_archs == '8.0;9.0+PTX'
    for argv in (['gather', 'd', '--arch', 'x86_64'],
                 ['install', 'd', '--arch', '9.0']):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert 'unrecognized arguments: --arch' in capsys.readouterr().err


@pytest.mark.parametrize('glibc,first,last', [
    ('2.28', 'manylinux_2_28_x86_64', 'manylinux1_x86_64'),
    ('2.17', 'manylinux_2_17_x86_64', 'manylinux1_x86_64')])
def test_platform_tags_include_older_glibc(tool, glibc, first, last):
    tags = tool.manylinux_platforms(glibc, 'x86_64')
    assert tags[0] == first and tags[-1] == last
    assert 'manylinux2014_x86_64' in tags
    assert ('manylinux_2_28_x86_64' in tags) == (glibc == '2.28')


def fake_sdist(path):
    """An mmcv source archive holding its runtime requirements."""
    text = b'addict\nnumpy\npywin32; sys_platform == "win32"\n'
    with tarfile.open(path, 'w:gz') as tar:
        info = tarfile.TarInfo('mmcv-2.1.0/requirements/runtime.txt')
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))


def test_gather_asks_for_the_node_and_leaves_out_what_it_has(
        tool, tmp_path, monkeypatch):
    """A node's freeze: numpy at the node's version and not kept; its local
    CUDA torch no constraint; the rest at this environment's versions, as
    wheels for the node's Python, glibc and CPU."""
    calls = []

    def fake_pip(*args, env=None, python=None):
        calls.append(args)
        dest = args[args.index('-w' if args[0] == 'wheel' else '-d') + 1]
        if '--no-binary' in args:
            fake_sdist(os.path.join(dest, 'mmcv-2.1.0.tar.gz'))
        elif args[0] == 'download':
            for name in ('numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.whl',
                         'mmdet-3.3.0-py3-none-any.whl'):
                open(os.path.join(dest, name), 'w').close()
        else:  # the eca_mmdet wheel, from a clean copy of the sources
            assert sorted(os.listdir(args[-1])) == [
                'LICENSE', 'README.md', 'eca_mmdet', 'pyproject.toml']
            open(os.path.join(dest, 'eca_mmdet-0.1.0-py3-none-any.whl'),
                 'w').close()
    monkeypatch.setattr(tool, 'pip', fake_pip)
    freeze = tmp_path / 'node.txt'
    freeze.write_text('numpy==2.2.6\ntorch==2.11.0+cu130\n'
                      'some-conda-pkg @ file:///opt/conda/x\n')
    bundle = tmp_path / 'b'
    assert tool.main(['gather', str(bundle), '--python', '3.12', '--glibc',
                      '2.28', '--platform-arch', 'x86_64', '--node-freeze',
                      str(freeze)]) == 0
    download = calls[1]
    assert download[:3] == ('download', '-d', str(bundle))
    i = download.index('--python-version')
    assert download[i + 1] == '3.12' and '--only-binary=:all:' in download
    platforms = [download[j + 1] for j, a in enumerate(download)
                 if a == '--platform']
    assert platforms == tool.manylinux_platforms('2.28', 'x86_64')
    assert {'mmdet==3.3.0', 'addict', 'numpy'} <= set(download)
    assert not [a for a in download if 'pywin32' in a]
    constraints = (bundle / 'constraints.txt').read_text().splitlines()
    assert 'numpy==2.2.6' in constraints
    assert not [c for c in constraints if c.split('==')[0] == 'torch']
    assert f'mmengine=={importlib.metadata.version("mmengine")}' in \
        constraints
    names = sorted(os.listdir(bundle))
    assert not [n for n in names if n.startswith('numpy-')]
    assert {'mmdet-3.3.0-py3-none-any.whl', 'mmcv-2.1.0.tar.gz',
            'offline_install.py', 'bundle.json'} <= set(names)
    info = json.loads((bundle / 'bundle.json').read_text())
    assert (info['python'], info['platform_arch']) == ('3.12', 'x86_64')
    assert info['eca_mmdet'] == 'eca_mmdet-0.1.0-py3-none-any.whl'


def test_wheel_key_and_architectures(tool):
    cu = dict(version='2.5.1+cu124', cuda='12.4')
    assert tool.wheel_key(cu, '8.0;9.0+PTX') == \
        'torch-2.5.1+cu124_cuda-12.4_archs-8.0-9.0+PTX'
    assert tool.wheel_key(dict(version='2.1.0+cpu', cuda=None)) == \
        'torch-2.1.0+cpu_cpu'
    assert tool.cuda_arch_list(['9.0', '8.0', '9.0']) == '8.0;9.0+PTX'
    assert tool.cuda_arch_list(['8.6']) == '8.6+PTX'
    # native code runs on the same major version, same or higher minor
    assert [tool.covers('8.0;9.0+PTX', c) for c in
            ('7.5', '8.0', '8.6', '9.0', '10.0')] == [
                False, True, True, True, False]
    assert tool.covers('9.0a', '9.0') and not tool.covers('8.6', '8.0')


def write_wheel(path, partial=False):
    """A whole zip file at ``path``, or its first half (a copy cut off)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('mmcv/__init__.py', '__version__ = "2.1.0"\n' * 50)
    data = buf.getvalue()
    path.write_bytes(data[:len(data) // 2] if partial else data)


@pytest.fixture
def node(tool, tmp_path, monkeypatch):
    """A bundle holding an mmcv wheel an A100 node built; pip, torch and
    the check recorded. ``node(torch)`` runs ``install`` and returns the
    pip calls and the check's arguments."""
    bundle = tmp_path / 'bundle'
    kept = bundle / 'built' / 'torch-2.5.1+cu124_cuda-12.4_archs-8.0+PTX'
    kept.mkdir(parents=True)
    write_wheel(kept / 'mmcv-2.1.0-cp3-cp3-linux_x86_64.whl')
    (bundle / 'bundle.json').write_text(json.dumps(dict(
        python=HERE, requirements=['mmdet==3.3.0'],
        mmcv_sdist='mmcv-2.1.0.tar.gz',
        eca_mmdet='eca_mmdet-0.1.0-py3-none-any.whl')))
    monkeypatch.setattr(tool, 'build_jobs', lambda: (5, '5 CPUs usable'))

    def run(torch_info, *options):
        calls, checked = [], []

        def fake_pip(*args, env=None, python=None):
            calls.append((args, env))
            if args[0] == 'wheel':
                out = args[args.index('-w') + 1]
                os.makedirs(out)
                open(os.path.join(out, 'mmcv-2.1.0-new.whl'), 'w').close()
        monkeypatch.setattr(tool, 'pip', fake_pip)
        monkeypatch.setattr(tool, 'torch_info', lambda python: torch_info)
        monkeypatch.setattr(tool, 'run_check',
                            lambda *a: checked.append(a) or 0)
        assert tool.main(['install', str(bundle), *options]) == 0
        assert all('--no-index' in args for args, _ in calls)
        return calls, checked
    run.built = bundle / 'built'
    return run


def test_install_reuses_a_wheel_whose_archs_cover_the_gpus(node):
    """An A100 (8.0) wheel on an A100 + A10 (8.6) node: no build."""
    calls, checked = node(dict(version='2.5.1+cu124', cuda='12.4',
                               caps=['8.0', '8.6']))
    kept = node.built / 'torch-2.5.1+cu124_cuda-12.4_archs-8.0+PTX'
    assert not [a for a, _ in calls if a[0] == 'wheel']
    assert str(kept / 'mmcv-2.1.0-cp3-cp3-linux_x86_64.whl') in calls[1][0]
    assert checked == [('8.0+PTX', str(kept))]


@pytest.mark.parametrize('torch_info,options,key,archs', [
    # an H200 node: the A100 wheel has no sm_90 code
    (dict(version='2.5.1+cu124', cuda='12.4', caps=['9.0']), [],
     'torch-2.5.1+cu124_cuda-12.4_archs-9.0+PTX', '9.0+PTX'),
    # the A100 again, with another CUDA build of the same torch
    (dict(version='2.5.1+cu118', cuda='11.8', caps=['8.0']), [],
     'torch-2.5.1+cu118_cuda-11.8_archs-8.0+PTX', '8.0+PTX'),
    # architectures asked for: exactly those
    (dict(version='2.5.1+cu124', cuda='12.4', caps=[]),
     ['--cuda-archs', '8.0;9.0+PTX'],
     'torch-2.5.1+cu124_cuda-12.4_archs-8.0-9.0+PTX', '8.0;9.0+PTX'),
])
def test_install_builds_where_no_kept_wheel_covers(node, torch_info,
                                                   options, key, archs):
    calls, checked = node(torch_info, *options)
    (build, env), = [(a, e) for a, e in calls if a[0] == 'wheel']
    # built in a folder of its own, then moved whole into the key folder
    tmp = build[build.index('-w') + 1]
    assert os.path.dirname(tmp) == str(node.built)
    assert os.path.basename(tmp).startswith('.tmp-')
    assert not os.path.exists(tmp)
    assert env['TORCH_CUDA_ARCH_LIST'] == archs
    assert env['MAX_JOBS'] == os.environ.get('MAX_JOBS', '5')
    assert env['FORCE_CUDA'] == '1' and env['MMCV_WITH_OPS'] == '1'
    assert str(node.built / key / 'mmcv-2.1.0-new.whl') in calls[2][0]
    assert checked == [(archs, str(node.built / key))]


def test_install_takes_no_partial_wheel_of_another_node(node):
    """An H200 node while another one builds into the same bundle: that
    node's temporary folder and a half-written wheel in the key folder are
    not taken; this node builds and moves its wheel in whole."""
    other = node.built / '.tmp-node2-4711'
    other.mkdir()
    write_wheel(other / 'mmcv-2.1.0-cp3-cp3-linux_x86_64.whl')
    key = node.built / 'torch-2.5.1+cu124_cuda-12.4_archs-9.0+PTX'
    key.mkdir()
    write_wheel(key / 'mmcv-2.1.0-cp3-cp3-linux_x86_64.whl', partial=True)
    calls, _ = node(dict(version='2.5.1+cu124', cuda='12.4', caps=['9.0']))
    assert [a for a, _ in calls if a[0] == 'wheel']
    assert str(key / 'mmcv-2.1.0-new.whl') in calls[2][0]
    assert sorted(p.name for p in node.built.glob('.tmp-*')) == [other.name]


def test_install_without_gpu_or_archs_is_a_clear_error(node):
    with pytest.raises(SystemExit, match='torch sees no GPU here.*'
                       '--cuda-archs "8.0;9.0\\+PTX"'):
        node(dict(version='2.5.1+cu124', cuda='12.4', caps=[]))


def test_build_jobs_from_affinity_cgroups_and_memory(tool, tmp_path,
                                                     monkeypatch):
    """A 64-CPU node: the job's affinity (16 CPUs), its cgroup's CPU quota
    and memory, /proc/meminfo's MemAvailable, cgroup v2 and v1."""
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(16)),
                        raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)
    gib = 2**30

    def write(path, text):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def jobs(proc, mem_available_gib=100):
        write(tmp_path / 'meminfo', 'MemTotal: 1 kB\nMemAvailable: '
              f'{mem_available_gib * 2**20} kB\n')
        write(tmp_path / 'cgroup', proc)
        return tool.build_jobs(meminfo=str(tmp_path / 'meminfo'),
                               proc_cgroup=str(tmp_path / 'cgroup'),
                               root=str(tmp_path / 'fs'))[0]
    v2 = tmp_path / 'fs' / 'job'
    assert jobs('0::/job\n') == 16  # no limits: the affinity
    assert jobs('0::/job\n', mem_available_gib=10) == 3  # 3 GiB a job
    write(v2 / 'cpu.max', '600000 100000\n')  # 6 CPUs
    assert jobs('0::/job/step\n') == 6  # the parent's limit holds
    write(v2 / 'memory.max', f'{13 * gib}\n')
    write(v2 / 'memory.current', f'{gib}\n')
    write(v2 / 'memory.stat', 'anon 1024\nfile 0\ninactive_file 0\n')
    assert jobs('0::/job\n') == 4  # 12 GiB free in the cgroup
    # 10 GiB used, 9 of it page cache the kernel reclaims: 12 GiB free
    write(v2 / 'memory.current', f'{10 * gib}\n')
    write(v2 / 'memory.stat', f'anon {gib}\nfile {9 * gib}\n'
          f'active_file 0\ninactive_file {9 * gib}\n')
    assert jobs('0::/job\n') == 4
    v1 = tmp_path / 'fs' / 'cpu,cpuacct' / 'slurm'
    write(v1 / 'cpu.cfs_quota_us', '250000\n')
    write(v1 / 'cpu.cfs_period_us', '100000\n')
    write(tmp_path / 'fs' / 'memory' / 'slurm' / 'memory.limit_in_bytes',
          f'{2**63 - 4096}\n')  # unlimited
    assert jobs('4:memory:/slurm\n3:cpu,cpuacct:/slurm\n') == 2
    # v1: 10 GiB, 9 used, 6 of them inactive page cache (the hierarchy's)
    v1m = tmp_path / 'fs' / 'memory' / 'job'
    write(v1m / 'memory.limit_in_bytes', f'{10 * gib}\n')
    write(v1m / 'memory.usage_in_bytes', f'{9 * gib}\n')
    write(v1m / 'memory.stat', f'inactive_file 0\n'
          f'total_inactive_file {6 * gib}\n')
    assert jobs('4:memory:/job\n') == 2  # 7 GiB free
    assert jobs('1:name=systemd:/\n') == 16


def test_mmcv_kernels_launch_on_the_cpu(tool):
    """The check's kernels, for real: mmcv's compiled NMS and RoIAlign."""
    keep, out = tool.launch_mmcv_ops('cpu')
    assert keep == [0, 2]  # box 1 overlaps box 0 by 68%
    # 8 x 8 values 8y + x, the box (0, 0)-(4, 4) shifted by half a pixel
    # (aligned): 2 x 2 bins, each the mean of its 2 x 2 samples at
    # integer points, e.g. (0 + 1 + 8 + 9) / 4
    assert out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == pytest.approx([4.5, 6.5, 20.5, 22.5])


def stub_gpus(monkeypatch, tool, failing=None, error='CUDA error: no kernel '
              'image is available for execution on the device',
              torch_fails=False, result=([0, 2], [4.5, 6.5, 20.5, 22.5])):
    """Two H200s, torch built for sm_80 and sm_86 (where ``torch_fails``:
    its kernels fail with ``error`` on ``failing``), mmcv's ops built with
    CUDA 12.4; ``launch_mmcv_ops`` gives ``result`` or raises ``error`` on
    ``failing``."""
    import mmcv.ops
    launched = []

    def fail(device):
        if device == failing:
            raise RuntimeError(error + '\nCUDA kernel errors might be '
                               'asynchronously reported')

    def launch(device):
        launched.append(device)
        fail(device)
        return result[0], torch.tensor(result[1])
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'get_device_capability',
                        lambda i: (9, 0))
    monkeypatch.setattr(torch.cuda, 'get_device_name',
                        lambda i: 'NVIDIA H200')
    monkeypatch.setattr(torch.cuda, 'get_arch_list',
                        lambda: ['sm_80', 'sm_86'])
    monkeypatch.setattr(tool, 'launch_torch',
                        fail if torch_fails else lambda device: 2.0)
    monkeypatch.setattr(tool, 'launch_mmcv_ops', launch)
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version',
                        lambda: '12.4')
    return launched


def test_check_launches_on_every_gpu(tool, monkeypatch, capsys):
    launched = stub_gpus(monkeypatch, tool)
    assert tool.main(['check']) == 0
    assert launched == ['cuda:0', 'cuda:1']
    assert 'ready: torch' in capsys.readouterr().out


def test_check_names_gpu_and_archs_where_no_kernel_runs(tool, monkeypatch):
    stub_gpus(monkeypatch, tool, failing='cuda:1')
    with pytest.raises(SystemExit) as e:
        tool.main(['check', '--cuda-archs', '8.0+PTX', '--built', '/b/k'])
    message = str(e.value)
    assert '\n' not in message
    assert 'no CUDA kernel for GPU 1 (NVIDIA H200, compute capability 9.0)' \
        in message
    assert 'TORCH_CUDA_ARCH_LIST=8.0+PTX (/b/k)' in message
    assert '--cuda-archs "9.0+PTX"' in message
    # any other failure is not mistaken for a missing kernel
    stub_gpus(monkeypatch, tool, failing='cuda:0', error='CUDA out of memory')
    with pytest.raises(RuntimeError, match='out of memory'):
        tool.main(['check'])


def test_check_refuses_mmcv_without_cuda_ops_on_a_gpu_node(tool, monkeypatch):
    import mmcv.ops
    launched = stub_gpus(monkeypatch, tool)
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version',
                        lambda: 'not available')
    with pytest.raises(SystemExit, match='built without its CUDA ops'):
        tool.main(['check'])
    assert launched == []


def test_check_says_torch_has_no_kernel_for_the_gpu(tool, monkeypatch):
    """torch's own build lacks the GPU: not blamed on mmcv."""
    launched = stub_gpus(monkeypatch, tool, failing='cuda:0',
                         torch_fails=True)
    with pytest.raises(SystemExit) as e:
        tool.main(['check', '--cuda-archs', '9.0+PTX'])
    message = str(e.value)
    assert '\n' not in message and launched == []
    assert 'torch ' + torch.__version__ + ' itself has no CUDA kernel for ' \
        'GPU 0 (NVIDIA H200, compute capability 9.0): it was built for ' \
        'sm_80 sm_86; install a torch build for sm_90' in message
    assert 'TORCH_CUDA_ARCH_LIST' not in message


@pytest.mark.parametrize('result', [
    ([0, 1, 2], [4.5, 6.5, 20.5, 22.5]),  # NMS kept an overlapping box
    ([0, 2], [0., 0., 0., 0.]),  # RoIAlign wrote nothing
])
def test_check_fails_on_wrong_mmcv_results(tool, monkeypatch, result):
    stub_gpus(monkeypatch, tool, result=result)
    with pytest.raises(SystemExit) as e:
        tool.main(['check', '--built', '/b/k'])
    message = str(e.value)
    assert '\n' not in message
    assert 'gives wrong results on GPU 0 (NVIDIA H200' in message
    assert f'NMS kept {result[0]} (expected [0, 2])' in message
    assert 'remove the mmcv wheel in /b/k and run install again' in message


def test_check_names_the_wheel_whose_ops_do_not_load(tool, monkeypatch):
    """mmcv._ext built against another torch: one line, no traceback."""
    ops = types.ModuleType('mmcv.ops')

    def missing(name):
        raise ImportError('/site/mmcv/_ext.cpython-312-x86_64-linux-gnu.so: '
                          'undefined symbol: _ZN3c105ErrorC2E')
    ops.__getattr__ = missing
    monkeypatch.setitem(sys.modules, 'mmcv.ops', ops)
    with pytest.raises(SystemExit) as e:
        tool.main(['check', '--built', '/b/k'])
    message = str(e.value)
    assert '\n' not in message
    assert "mmcv's compiled ops (mmcv._ext) do not load" in message
    assert 'undefined symbol: _ZN3c105ErrorC2E' in message
    assert 'the mmcv wheel in /b/k was built for another torch' in message


def test_gpu_check_fails_where_the_check_fails(tmp_path):
    """gpu_check.sh's exit status: the check failing (a wheel without a
    kernel for the GPU) fails the run even where tests and figures pass."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    (fake / 'nvidia-smi').write_text('#!/bin/sh\necho "NVIDIA H200"\n')
    (fake / 'python').write_text(
        '#!/bin/sh\ncase "$*" in *"offline_install.py check"*)\n'
        '  echo "check: mmcv 2.1.0 has no CUDA kernel for GPU 0"; exit 1;;\n'
        'esac\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    r = subprocess.run(
        ['bash', os.path.join(ROOT, 'tools', 'gpu_check.sh'),
         str(tmp_path / 'out')], capture_output=True, text=True,
        env=dict(os.environ, PATH=f'{fake}:{os.environ["PATH"]}',
                 PYTHON=str(fake / 'python')))
    assert r.returncode != 0, r.stdout
    assert 'check exit 1, tests exit 0, figures exit 0' in r.stdout
    assert 'no CUDA kernel for GPU 0' in (tmp_path / 'out' /
                                          'env.txt').read_text()
