#!/usr/bin/env python
"""Install eca-mmdet on a GPU node without internet.

On a machine with internet, gather what the node lacks into one folder
(wheels chosen for the node's Python and platform, mmcv as source)::

    python tools/offline_install.py gather gpu-bundle \\
        --python 3.12 --glibc 2.28 --arch x86_64 [--node-freeze node.txt]

Versions are those of the environment that runs ``gather`` (the tested
stack; ``--no-pin`` for the newest), except what the node already has
(``--node-freeze``: the node's ``python -m pip list --format=freeze``),
which keeps the node's version and is not downloaded. torch is never
gathered: the node brings its own CUDA build. Copy the folder to the node
and run there, with the node's Python (torch and nvcc installed)::

    python gpu-bundle/offline_install.py install gpu-bundle

which installs from the folder with the index disabled, builds mmcv with its
CUDA ops for the node's GPUs only (``TORCH_CUDA_ARCH_LIST`` from the visible
devices, all cores), keeps that wheel in ``gpu-bundle/built/<torch>/`` for
the next node of the same kind, installs eca_mmdet and checks the imports.
Only the standard library is used, so it runs before anything is installed.
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

MMCV = 'mmcv==2.1.0'
# what a node needs besides torch and mmcv: the stack, mmcv's build tools,
# and what the device tests import
REQUIREMENTS = ['mmengine==0.10.7', 'mmdet==3.3.0', 'pycocotools',
                'safetensors>=0.4', 'filelock>=3.12', 'numpy',
                'setuptools>=77.0.3,<81', 'wheel', 'ninja', 'pytest',
                'hypothesis']
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    for tag in manylinux_platforms(args.glibc, args.arch):
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
    info = dict(python=args.python, glibc=args.glibc, arch=args.arch,
                requirements=wanted, mmcv_sdist=os.path.basename(sdist),
                eca_mmdet=os.path.basename(glob.glob(
                    os.path.join(dest, 'eca_mmdet-*.whl'))[0]),
                node_has=sorted(node))
    with open(os.path.join(dest, 'bundle.json'), 'w') as f:
        json.dump(info, f, indent=1)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(dest, '*')))
    print(f'\n{dest}: {len(kept)} wheels, {info["mmcv_sdist"]}, '
          f'{info["eca_mmdet"]} ({size / 2**20:.0f} MiB) for CPython '
          f'{args.python} on glibc {args.glibc} {args.arch}. On the node:\n'
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


def mmcv_build_env(torch, arch_list=None):
    """Environment of mmcv's build: its CUDA ops for these GPUs only (or
    CPU ops where torch has no CUDA), all cores."""
    env = dict(os.environ, MMCV_WITH_OPS='1',
               MAX_JOBS=str(os.cpu_count() or 1))
    if torch['cuda']:
        arch = arch_list or ';'.join(torch['caps'])
        if not arch:
            raise SystemExit(
                'install: torch sees no GPU here, so the CUDA architecture '
                'to build mmcv for is unknown: give --arch, e.g. --arch 9.0 '
                'for an H100/H200')
        env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=arch)
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
    built = os.path.join(bundle, 'built', f'torch-{torch["version"]}')
    wheels = glob.glob(os.path.join(built, 'mmcv-2.1.0-*.whl'))
    if not wheels:
        build_env = mmcv_build_env(torch, args.arch)
        print(f'==> building mmcv 2.1.0 against torch {torch["version"]} '
              f'(CUDA {torch["cuda"]}, TORCH_CUDA_ARCH_LIST='
              f'{build_env.get("TORCH_CUDA_ARCH_LIST", "-")}, '
              f'{build_env["MAX_JOBS"]} jobs)', flush=True)
        start = time.perf_counter()
        pip('wheel', *offline, '--no-build-isolation', '--no-deps',
            '--no-cache-dir', '-w', built,
            os.path.join(bundle, info['mmcv_sdist']), env=build_env)
        print(f'==> mmcv built in {(time.perf_counter() - start) / 60:.1f} '
              f'min; kept in {built}', flush=True)
        wheels = glob.glob(os.path.join(built, 'mmcv-2.1.0-*.whl'))
    pip('install', *offline, wheels[0], env=env)
    pip('install', '--no-index', '--no-deps', '--force-reinstall',
        os.path.join(bundle, info['eca_mmdet']), env=env)
    check = ('import torch, mmcv, mmdet, eca_mmdet; '
             'from mmcv.ops import get_compiling_cuda_version as v; '
             'print("ready: torch", torch.__version__, "CUDA", '
             'torch.version.cuda, "| mmcv", mmcv.__version__, "ops CUDA", '
             'v(), "| mmdet", mmdet.__version__, "| eca_mmdet", '
             'eca_mmdet.__version__, "| GPUs", torch.cuda.device_count())')
    subprocess.run([sys.executable, '-c', check], check=True)
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
    g.add_argument('--arch', default=platform.machine(),
                   help="the node's CPU architecture, default this one")
    g.add_argument('--node-freeze', help="the node's `python -m pip list "
                   "--format=freeze`: those are not downloaded")
    g.add_argument('--no-pin', action='store_true',
                   help="newest releases instead of this environment's "
                   'versions (the ones the tests ran with)')
    g.add_argument('--extra', nargs='*', default=[],
                   help='more requirements to gather')
    i = sub.add_parser('install', help='on the node, with its Python')
    i.add_argument('bundle', help='the folder made by gather')
    i.add_argument('--arch', help='TORCH_CUDA_ARCH_LIST for mmcv (default: '
                   'the visible GPUs, e.g. 9.0 for an H200)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return gather(args) if args.command == 'gather' else install(args)


if __name__ == '__main__':
    sys.exit(main())
