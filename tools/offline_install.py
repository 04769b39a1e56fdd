#!/usr/bin/env python
"""Install eca-mmdet on a GPU node without internet.

On a machine with internet, gather what the node lacks into one folder
(wheels chosen for the node's Python and platform, mmcv as source)::

    python tools/offline_install.py gather gpu-bundle \\
        --python 3.12 --glibc 2.28 --platform-arch x86_64 \\
        [--node-freeze node.txt]

Versions are those of the environment that runs ``gather`` (the tested
stack; ``--no-pin`` for the newest), except what the node already has
(``--node-freeze``: the node's ``python -m pip list --format=freeze``),
which keeps the node's version and is not downloaded. torch is never
gathered: the node brings its own CUDA build. Copy the folder to the node
and run there, with the node's Python (torch and nvcc installed)::

    python gpu-bundle/offline_install.py install gpu-bundle

which installs from the folder with the index disabled and installs mmcv
with its CUDA ops: a wheel kept in ``gpu-bundle/built/`` by an earlier node
where one was built for this torch, this CUDA and architectures that cover
the visible GPUs, else one built now (``TORCH_CUDA_ARCH_LIST`` = the visible
GPUs' capabilities, the highest also as PTX, e.g. ``8.0;9.0+PTX``, or
``--cuda-archs``; ``MAX_JOBS`` from the CPUs and memory this process may
use) in ``built/.tmp-<host>-<pid>/`` and moved whole into
``built/torch-<version>_cuda-<version>_archs-<archs>/``.
It then installs eca_mmdet and runs ``check``: the imports, a torch kernel,
and mmcv's NMS and RoIAlign kernels (their results compared with the known
ones) on every visible GPU (``python offline_install.py check`` runs it
alone). Only the standard library is used, so it runs before
anything is installed.
"""
import argparse
import glob
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

MMCV = 'mmcv==2.1.0'
# what a node needs besides torch and mmcv: the stack, mmcv's build tools,
# and what the device tests import
REQUIREMENTS = ['mmengine==0.10.7', 'mmdet==3.3.0', 'pycocotools',
                'safetensors>=0.4', 'filelock>=3.30', 'numpy',
                'setuptools>=77.0.3,<81', 'wheel', 'ninja', 'pytest',
                'hypothesis']
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# memory of one compile job of mmcv's ops (an nvcc process takes 2-3 GiB)
GIB_PER_JOB = 3
# what the check's NMS and RoIAlign give (launch_mmcv_ops)
NMS_KEEP, ROI_ALIGN_OUT = [0, 2], [4.5, 6.5, 20.5, 22.5]


def pip(*args, python=sys.executable, env=None):
    cmd = [python, '-m', 'pip', *args]
    print('$', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def manylinux_platforms(glibc, arch):
    """pip tags a wheel built for glibc ``glibc`` or older may carry (pip
    before 23.3 does not expand ``--platform`` to older tags itself)."""
    major, minor = (int(v) for v in glibc.split('.'))
    if major != 2:
        raise SystemExit(f'--glibc {glibc}: expected 2.x')
    tags = [f'manylinux_2_{m}_{arch}' for m in range(minor, 4, -1)]
    legacy = {17: 'manylinux2014', 12: 'manylinux2010', 5: 'manylinux1'}
    tags += [f'{name}_{arch}' for m, name in legacy.items() if m <= minor]
    return tags


def mmcv_runtime_requirements(sdist):
    """mmcv's runtime requirements, read from its source archive."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers()
                      if m.name.endswith('requirements/runtime.txt'))
        lines = tar.extractfile(member).read().decode().splitlines()
    return [line.strip() for line in lines
            if line.strip() and not line.startswith('#')
            and 'win32' not in line]


def read_freeze(path):
    """``{normalized name: version}`` of a ``pip list --format=freeze``."""
    pins = {}
    for line in open(path):
        m = re.match(r'^([A-Za-z0-9_.-]+)==([^\s;]+)$', line.strip())
        if m:
            pins[normalize(m.group(1))] = m.group(2)
    return pins


def installed_versions():
    """``{normalized name: version}`` of this environment."""
    import importlib.metadata
    return {normalize(d.metadata['Name']): d.version
            for d in importlib.metadata.distributions()}


def normalize(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def gather(args):
    dest = os.path.abspath(args.dest)
    os.makedirs(dest, exist_ok=True)
    pip('download', '--no-deps', '--no-binary', ':all:', '-d', dest, MMCV)
    sdist = glob.glob(os.path.join(dest, 'mmcv-2.1.0.tar.gz'))[0]
    wanted = REQUIREMENTS + mmcv_runtime_requirements(sdist) + args.extra
    node = read_freeze(args.node_freeze) if args.node_freeze else {}
    target = ['--only-binary=:all:', '--implementation', 'cp',
              '--python-version', args.python]
    for tag in manylinux_platforms(args.glibc, args.platform_arch):
        target += ['--platform', tag]
    # the node's versions where it has the package, else (unless --no-pin)
    # those of this environment, the stack the tests ran on
    pins = {} if args.no_pin else installed_versions()
    pins.update(node)
    path = os.path.join(dest, 'constraints.txt')
    with open(path, 'w') as f:
        f.writelines(f'{n}=={v}\n' for n, v in sorted(pins.items())
                     if '+' not in v  # local builds (torch+cu...)
                     and n not in ('eca-mmdet', 'mmcv', 'torch'))
    pip('download', '-d', dest, *target, '-c', path, *wanted)
    kept = []
    for wheel in glob.glob(os.path.join(dest, '*.whl')):
        if normalize(os.path.basename(wheel).split('-')[0]) in node:
            os.remove(wheel)  # the node has it
        else:
            kept.append(os.path.basename(wheel))
    for old in glob.glob(os.path.join(dest, 'eca_mmdet-*.whl')):
        os.remove(old)
    # from a clean copy of the sources: setuptools would reuse a stale
    # build/ of the checkout
    with tempfile.TemporaryDirectory() as src:
        for name in ('pyproject.toml', 'README.md', 'LICENSE'):
            shutil.copy(os.path.join(ROOT, name), src)
        shutil.copytree(os.path.join(ROOT, 'eca_mmdet'),
                        os.path.join(src, 'eca_mmdet'),
                        ignore=shutil.ignore_patterns('__pycache__'))
        pip('wheel', '--no-deps', '--no-build-isolation', '-w', dest, src)
    shutil.copy(os.path.abspath(__file__),
                os.path.join(dest, 'offline_install.py'))
    info = dict(python=args.python, glibc=args.glibc,
                platform_arch=args.platform_arch,
                requirements=wanted, mmcv_sdist=os.path.basename(sdist),
                eca_mmdet=os.path.basename(glob.glob(
                    os.path.join(dest, 'eca_mmdet-*.whl'))[0]),
                node_has=sorted(node))
    with open(os.path.join(dest, 'bundle.json'), 'w') as f:
        json.dump(info, f, indent=1)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(dest, '*')))
    print(f'\n{dest}: {len(kept)} wheels, {info["mmcv_sdist"]}, '
          f'{info["eca_mmdet"]} ({size / 2**20:.0f} MiB) for CPython '
          f'{args.python} on glibc {args.glibc} {args.platform_arch}. On '
          f'the node:\n'
          f'    python {os.path.basename(dest)}/offline_install.py install '
          f'{os.path.basename(dest)}')
    return 0


def torch_info(python):
    """torch's version, CUDA version and the visible GPUs' capabilities in
    the node's Python, or None where torch is not installed."""
    code = ('import json, torch; c = torch.cuda.is_available(); '
            'print(json.dumps(dict(version=torch.__version__, '
            'cuda=torch.version.cuda, caps=sorted({"%d.%d" % '
            'torch.cuda.get_device_capability(i) for i in '
            'range(torch.cuda.device_count())}) if c else [])))')
    r = subprocess.run([python, '-c', code], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def _read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def _cgroup_cpus(d):
    """CPUs the cgroup folder ``d`` allows (v2 ``cpu.max``, v1 CFS quota),
    None where unlimited or not there."""
    v2, quota, period = (_read(os.path.join(d, 'cpu.max')),
                         _read(os.path.join(d, 'cpu.cfs_quota_us')),
                         _read(os.path.join(d, 'cpu.cfs_period_us')))
    if v2 and v2[0] != 'max':
        return int(v2[0]) / int(v2[1])
    if quota and period and int(quota[0]) > 0:
        return int(quota[0]) / int(period[0])
    return None


def _cgroup_bytes(d):
    """Bytes the cgroup folder ``d`` leaves (limit less usage, the page cache
    the kernel reclaims not counted: v2 ``memory.max``, ``memory.current``
    less ``inactive_file``; v1 ``memory.limit_in_bytes``,
    ``memory.usage_in_bytes`` less ``total_inactive_file``), None where
    unlimited."""
    for limit, usage in (('memory.max', 'memory.current'),
                         ('memory.limit_in_bytes', 'memory.usage_in_bytes')):
        value = _read(os.path.join(d, limit))
        if value and value[0] != 'max' and int(value[0]) < 2**60:
            used = _read(os.path.join(d, usage))
            stat = _read(os.path.join(d, 'memory.stat')) or []
            stat = dict(zip(stat[::2], stat[1::2]))
            cache = stat.get('total_inactive_file',
                             stat.get('inactive_file', 0))
            used = max(0, int(used[0]) - int(cache)) if used else 0
            return int(value[0]) - used
    return None


def cgroup_limits(proc_cgroup='/proc/self/cgroup', root='/sys/fs/cgroup'):
    """CPUs and bytes of memory the cgroups of this process leave it: the
    smallest limit of its cgroup and those above it (cgroup v2, or v1's cpu
    and memory controllers).

    Returns:
        tuple: ``(cpus, bytes)``, each None where no limit was found.
    """
    cpus = mem = None
    for line in (_read(proc_cgroup) or []):
        _, controllers, path = line.split(':', 2)
        if controllers and not {'cpu', 'memory'} & set(controllers.split(',')):
            continue
        base = os.path.join(root, controllers)  # v2: the root itself
        d = os.path.normpath(base + path)
        while True:
            for value, kind in ((_cgroup_cpus(d), 'cpu'),
                                (_cgroup_bytes(d), 'mem')):
                if value is not None and kind == 'cpu':
                    cpus = value if cpus is None else min(cpus, value)
                elif value is not None:
                    mem = value if mem is None else min(mem, value)
            if len(d) <= len(base):
                break
            d = os.path.dirname(d)
    return cpus, mem


def build_jobs(meminfo='/proc/meminfo', **cgroup):
    """Parallel compile jobs for mmcv's build: the CPUs this process may run
    on (its affinity, its cgroup's CPU quota), at most one per
    ``GIB_PER_JOB`` GiB of the memory it has (``MemAvailable``, its cgroup's
    limit).

    Args:
        meminfo (str): the ``/proc/meminfo`` to read.
        cgroup: arguments of :func:`cgroup_limits`.

    Returns:
        tuple[int, str]: the jobs and what they were derived from.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') \
        else os.cpu_count() or 1
    quota, mem = cgroup_limits(**cgroup)
    for line in open(meminfo) if os.path.exists(meminfo) else []:
        if line.startswith('MemAvailable:'):  # in kB
            avail = int(line.split()[1]) * 1024
            mem = avail if mem is None else min(mem, avail)
    jobs, why = cpus, [f'{cpus} CPUs usable']
    if quota is not None:
        jobs = min(jobs, max(1, math.floor(quota)))
        why.append(f'a cgroup quota of {quota:g} CPUs')
    if mem is not None:
        jobs = min(jobs, int(mem // (GIB_PER_JOB * 2**30)))
        why.append(f'{mem / 2**30:.1f} GiB memory at {GIB_PER_JOB} GiB a job')
    return max(1, jobs), ', '.join(why)


def cuda_arch_list(caps):
    """``TORCH_CUDA_ARCH_LIST`` for the compute capabilities ``caps``
    (e.g. ``['9.0', '8.0']``): each, the highest also as PTX, which a newer
    GPU compiles at load time (``8.0;9.0+PTX``)."""
    caps = sorted(set(caps), key=lambda c: tuple(map(int, c.split('.'))))
    return ';'.join(caps[:-1] + [caps[-1] + '+PTX'])


def covers(arch_list, cap):
    """Whether kernels built for ``arch_list`` (``TORCH_CUDA_ARCH_LIST``) run
    natively on a GPU of compute capability ``cap``: code for the same major
    version and a minor one not above it (CUDA's binary compatibility)."""
    major, minor = (int(v) for v in cap.split('.'))
    for arch in re.split(r'[;\s]+', arch_list.strip()):
        m = re.match(r'(\d+)\.(\d+)(a?)', arch)
        if m and int(m.group(1)) == major and (
                int(m.group(2)) == minor if m.group(3) else
                int(m.group(2)) <= minor):
            return True
    return False


def wheel_key(torch, arch_list=None):
    """The folder under ``built/`` of an mmcv wheel: the torch version, its
    CUDA version and the architectures the wheel was built for, e.g.
    ``torch-2.5.1+cu124_cuda-12.4_archs-8.0-9.0+PTX`` (``..._cpu`` for a
    torch without CUDA)."""
    if not torch['cuda']:
        return f'torch-{torch["version"]}_cpu'
    archs = '-'.join(a for a in re.split(r'[;\s]+', arch_list) if a)
    return f'torch-{torch["version"]}_cuda-{torch["cuda"]}_archs-{archs}'


def complete_wheels(folder):
    """The mmcv wheels in ``folder`` that are whole zip files (not one
    another node is still writing or left half-written)."""
    return [w for w in sorted(glob.glob(os.path.join(folder,
                                                     'mmcv-2.1.0-*.whl')))
            if zipfile.is_zipfile(w)]


def choose_build(built, torch, cuda_archs=None):
    """Where the mmcv wheel for this torch and these GPUs is (or goes).

    Args:
        built (str): the bundle's ``built/`` folder.
        torch (dict): :func:`torch_info` of the node's Python.
        cuda_archs (str, optional): ``TORCH_CUDA_ARCH_LIST`` asked for.

    Returns:
        tuple: ``(folder, arch_list, wheel)``: a kept wheel with native
        code for every visible GPU (PTX alone does not count: that GPU gets
        native code from a build of its own rather than a JIT compile),
        else the folder to build into with ``wheel`` None.
    """
    if torch['cuda'] and not cuda_archs:
        if not torch['caps']:
            raise SystemExit(
                'install: torch sees no GPU here, so the CUDA architectures '
                'to build mmcv for are unknown: give --cuda-archs, e.g. '
                '--cuda-archs "8.0;9.0+PTX" for A100 and H100/H200 nodes')
        prefix = wheel_key(torch, '')  # ..._archs-
        for folder in sorted(glob.glob(os.path.join(built, prefix + '*'))):
            archs = os.path.basename(folder)[len(prefix):].replace('-', ';')
            wheels = complete_wheels(folder)
            if wheels and all(covers(archs, c) for c in torch['caps']):
                return folder, archs, wheels[0]
        cuda_archs = cuda_arch_list(torch['caps'])
    folder = os.path.join(built, wheel_key(torch, cuda_archs))
    wheels = complete_wheels(folder)
    return folder, cuda_archs, wheels[0] if wheels else None


def mmcv_build_env(torch, arch_list, jobs):
    """Environment of mmcv's build: its CUDA ops for ``arch_list`` (CPU ops
    where torch has no CUDA), ``jobs`` parallel compile jobs unless
    ``MAX_JOBS`` is set."""
    env = dict(os.environ, MMCV_WITH_OPS='1')
    env.setdefault('MAX_JOBS', str(jobs))
    if torch['cuda']:
        env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=arch_list)
    return env


def install(args):
    bundle = os.path.abspath(args.bundle)
    with open(os.path.join(bundle, 'bundle.json')) as f:
        info = json.load(f)
    here = '%d.%d' % sys.version_info[:2]
    if here != info['python']:
        raise SystemExit(f'install: {bundle} holds wheels for Python '
                         f'{info["python"]}, this is Python {here} '
                         f'({sys.executable}); gather again with '
                         f'--python {here}')
    offline = ['--no-index', '--find-links', bundle]
    env = dict(os.environ, PIP_NO_INDEX='1')
    pip('install', *offline, *info['requirements'], env=env)
    torch = torch_info(sys.executable)
    if torch is None:
        raise SystemExit('install: torch is not installed in this Python; '
                         'install the node\'s CUDA build of torch first (the '
                         'bundle does not carry torch)')
    built, arch_list, wheel = choose_build(
        os.path.join(bundle, 'built'), torch, args.cuda_archs)
    if wheel is None:
        jobs, why = build_jobs()
        build_env = mmcv_build_env(torch, arch_list, jobs)
        print(f'==> building mmcv 2.1.0 against torch {torch["version"]} '
              f'(CUDA {torch["cuda"]}, TORCH_CUDA_ARCH_LIST='
              f'{arch_list or "-"}, MAX_JOBS={build_env["MAX_JOBS"]}: {why})',
              flush=True)
        start = time.perf_counter()
        # built in a folder of this process's own and moved whole into the
        # kept folder: other nodes sharing the bundle never see a part
        tmp = os.path.join(os.path.dirname(built),
                           f'.tmp-{socket.gethostname()}-{os.getpid()}')
        try:
            pip('wheel', *offline, '--no-build-isolation', '--no-deps',
                '--no-cache-dir', '-w', tmp,
                os.path.join(bundle, info['mmcv_sdist']), env=build_env)
            new = glob.glob(os.path.join(tmp, 'mmcv-2.1.0-*.whl'))[0]
            os.makedirs(built, exist_ok=True)
            wheel = os.path.join(built, os.path.basename(new))
            os.replace(new, wheel)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f'==> mmcv built in {(time.perf_counter() - start) / 60:.1f} '
              f'min; kept in {built}', flush=True)
    else:
        print(f'==> mmcv 2.1.0 kept by an earlier node: {wheel}', flush=True)
    pip('install', *offline, wheel, env=env)
    pip('install', '--no-index', '--no-deps', '--force-reinstall',
        os.path.join(bundle, info['eca_mmdet']), env=env)
    return run_check(arch_list, built)


def run_check(arch_list, built):
    """``check`` in a fresh interpreter (the packages just installed)."""
    cmd = [sys.executable, os.path.abspath(__file__), 'check', '--built',
           built] + (['--cuda-archs', arch_list] if arch_list else [])
    return subprocess.run(cmd).returncode


def launch_torch(device):
    """A plain torch kernel on ``device``."""
    import torch
    return torch.ones(1, device=device).add_(1).item()


def launch_mmcv_ops(device):
    """Run mmcv's NMS and RoIAlign once on ``device``.

    Returns:
        tuple: the indices NMS keeps and RoIAlign's output.
    """
    import torch
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.]], device=device)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.5)
    feats = torch.arange(64., device=device).view(1, 1, 8, 8)
    rois = torch.tensor([[0., 0., 0., 4., 4.]], device=device)
    out = roi_align(feats, rois, (2, 2), 1.0, 2, 'avg', True)
    return keep.tolist(), out.cpu()


def _no_kernel(e):
    return 'no kernel image' in str(e) or 'invalid device function' in str(e)


def check(args):
    """The stack imports, and torch's and mmcv's CUDA kernels run on every
    visible GPU with the known results: one line naming the GPU and what to
    do where they do not."""
    import torch
    wheel = f'the mmcv wheel in {args.built}' if args.built else \
        'the installed mmcv wheel'
    try:
        import mmcv
        from mmcv.ops import get_compiling_cuda_version
    except (ImportError, OSError) as e:
        raise SystemExit(
            f'check: mmcv\'s compiled ops (mmcv._ext) do not load with torch '
            f'{torch.__version__}: {str(e).splitlines()[0][-300:]}; {wheel} '
            f'was built for another torch or CUDA: remove it and run install '
            f'again to build mmcv for this torch') from None
    import mmdet

    import eca_mmdet
    gpus = torch.cuda.device_count()
    if gpus and get_compiling_cuda_version() == 'not available':
        raise SystemExit(f'check: mmcv {mmcv.__version__} was built without '
                         f'its CUDA ops ({gpus} GPU(s) visible); run install '
                         f'again on a node with nvcc (it builds with '
                         f'FORCE_CUDA=1)')
    for i in range(gpus):
        cap = '%d.%d' % torch.cuda.get_device_capability(i)
        gpu = f'GPU {i} ({torch.cuda.get_device_name(i)}, compute ' \
              f'capability {cap})'
        try:
            launch_torch(f'cuda:{i}')
        except RuntimeError as e:
            if not _no_kernel(e):
                raise
            raise SystemExit(
                f'check: torch {torch.__version__} itself has no CUDA kernel '
                f'for {gpu}: it was built for '
                f'{" ".join(torch.cuda.get_arch_list()) or "(none)"}; install '
                f'a torch build for sm_{cap.replace(".", "")} (not an mmcv '
                f'problem)') from None
        try:
            keep, out = launch_mmcv_ops(f'cuda:{i}')
        except RuntimeError as e:
            if not _no_kernel(e):
                raise
            raise SystemExit(
                f'check: mmcv {mmcv.__version__} has no CUDA kernel for {gpu}'
                f': its ops were built for TORCH_CUDA_ARCH_LIST='
                f'{args.cuda_archs or "(unknown)"}'
                + (f' ({args.built})' if args.built else '') +
                f'; run install again with --cuda-archs "{cap}+PTX" (or the '
                f'architectures of all your nodes, the highest +PTX) to '
                f'build for this GPU') from None
        out = out.flatten().tolist()
        if keep != NMS_KEEP or len(out) != len(ROI_ALIGN_OUT) or any(
                abs(a - b) > 1e-4 for a, b in zip(out, ROI_ALIGN_OUT)):
            raise SystemExit(
                f'check: mmcv {mmcv.__version__} gives wrong results on '
                f'{gpu}: NMS kept {keep} (expected {NMS_KEEP}), RoIAlign '
                f'{[round(v, 4) for v in out]} (expected {ROI_ALIGN_OUT}); '
                f'remove {wheel} and run install again to rebuild it')
    print('ready: torch', torch.__version__, 'CUDA', torch.version.cuda,
          '| mmcv', mmcv.__version__, 'ops CUDA',
          get_compiling_cuda_version(), '| mmdet', mmdet.__version__,
          '| eca_mmdet', eca_mmdet.__version__, '| GPUs', gpus,
          '(torch, NMS and RoIAlign ran on each, results as expected)'
          if gpus else '(no GPU visible: no CUDA kernel launched)')
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    g = sub.add_parser('gather', help='on a connected machine')
    g.add_argument('dest', help='folder to fill (created)')
    g.add_argument('--python', default='%d.%d' % sys.version_info[:2],
                   help="the node's Python, e.g. 3.12 (default: this one)")
    g.add_argument('--glibc', default=platform.libc_ver()[1] or '2.17',
                   help="the node's glibc (ldd --version), default this one")
    g.add_argument('--platform-arch', default=platform.machine(),
                   help="the node's CPU architecture (x86_64, aarch64), "
                   'default this one')
    g.add_argument('--node-freeze', help="the node's `python -m pip list "
                   "--format=freeze`: those are not downloaded")
    g.add_argument('--no-pin', action='store_true',
                   help="newest releases instead of this environment's "
                   'versions (the ones the tests ran with)')
    g.add_argument('--extra', nargs='*', default=[],
                   help='more requirements to gather')
    i = sub.add_parser('install', help='on the node, with its Python')
    i.add_argument('bundle', help='the folder made by gather')
    i.add_argument('--cuda-archs', help='TORCH_CUDA_ARCH_LIST to build mmcv '
                   'for (default: the visible GPUs, the highest +PTX, e.g. '
                   '"8.0;9.0+PTX")')
    c = sub.add_parser('check', help='on the node: the imports, and mmcv\'s '
                       'NMS and RoIAlign on every visible GPU')
    c.add_argument('--cuda-archs', help='what mmcv was built for (named in '
                   'the error)')
    c.add_argument('--built', help='the folder of the wheel (named in the '
                   'error)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return dict(gather=gather, install=install, check=check)[args.command](
        args)


if __name__ == '__main__':
    sys.exit(main())
