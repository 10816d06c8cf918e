// deploy/prepare-pi.sh, run with bash against a temporary file-system root. HELIOMESH_ROOT is
// always set here: with it the script executes no command on this machine, it only prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, symlinkSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

// Compiled to dist/tests/deploy/, so the repository root is three levels up.
const SCRIPT = resolve(import.meta.dirname, '../../../deploy/prepare-pi.sh');
const STEPS = ['i2c', 'node', 'install', 'user', 'register', 'config', 'service'];

function bash(args: string[], root?: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C', ...extraEnv };
  if (root !== undefined) env.HELIOMESH_ROOT = root;
  const r = spawnSync('bash', args, { env, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const prepare = (args: string[], root: string, env: NodeJS.ProcessEnv = {}) => bash([SCRIPT, ...args], root, env);

/** A temporary root shaped like a fresh Bookworm image's files the script edits. */
function freshRoot(configTxt = '# For more options see config.txt(5)\ndtparam=audio=on\n#dtparam=i2c_arm=on\n#dtparam=spi=on\n\n[pi4]\narm_boost=1\n'): string {
  const root = mkdtempSync(join(tmpdir(), 'heliomesh-pi-'));
  mkdirSync(join(root, 'boot/firmware'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'boot/firmware/config.txt'), configTxt);
  writeFileSync(join(root, 'etc/modules'), '# /etc/modules: kernel modules to load at boot time.\n');
  return root;
}

/** Every path under `dir` with its mode, size, mtime and contents. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path);
      const body = st.isFile() ? readFileSync(path, 'utf8') : '';
      out.set(path, `${st.mode} ${st.size} ${st.mtimeMs} ${body}`);
      if (st.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out;
}

const fullArgs = (tarball: string) => [
  '--node-id', 'pi-07', '--group', 'g1', '--gateway', 'mqtt://gateway.local:1883', '--source', tarball, '--node-password', 's3cret',
];

test('bash -n accepts the script', () => {
  const r = bash(['-n', SCRIPT]);
  assert.equal(r.code, 0, r.err);
});

test('shellcheck finds nothing', () => {
  // Debian's shellcheck; .ci/run installs it.
  const r = spawnSync('shellcheck', [SCRIPT], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'shellcheck is not installed: apt-get install shellcheck');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('--help describes every flag and exits 0', () => {
  const r = bash([SCRIPT, '--help']);
  assert.equal(r.code, 0, r.err);
  for (const flag of ['--node-id', '--group', '--gateway', '--source', '--dry-run', '--gateway-ssh', '--node-password', '--steps', 'HELIOMESH_ROOT']) {
    assert.match(r.out, new RegExp(flag), `help mentions ${flag}`);
  }
});

test('missing and bad flags fail with the flag named', () => {
  const root = freshRoot();
  try {
    const none = prepare(['--dry-run'], root);
    assert.equal(none.code, 2);
    assert.match(none.err, /missing required flag\(s\): --node-id --group --gateway --source/);

    const noSource = prepare(['--dry-run', '--node-id', 'pi-1', '--group', 'g1', '--gateway', 'mqtt://h:1883'], root);
    assert.notEqual(noSource.code, 0);
    assert.match(noSource.err, /--source/);
    assert.doesNotMatch(noSource.err, /--node-id/);

    const cases: [string[], RegExp][] = [
      [['--node-id'], /--node-id needs a value/],
      [['--node-id', 'pi 1', '--group', 'g', '--gateway', 'mqtt://h', '--source', 'heliomesh'], /--node-id 'pi 1' is not a valid node id/],
      [['--node-id', 'p', '--group', 'g/1', '--gateway', 'mqtt://h', '--source', 'heliomesh'], /--group 'g\/1'/],
      [['--node-id', 'p', '--group', 'g', '--fleet', 'a+b', '--gateway', 'mqtt://h', '--source', 'heliomesh'], /--fleet 'a\+b' is not a valid fleet id/],
      [['--node-id', 'p', '--group', 'g', '--gateway', 'http://h:1883', '--source', 'heliomesh'], /--gateway 'http:\/\/h:1883' is not an MQTT URL/],
      [['--node-id', 'p', '--group', 'g', '--gateway', 'mqtt://h:70000', '--source', 'heliomesh'], /port 70000 is out of range/],
      [['--node-id', 'p', '--group', 'g', '--gateway', 'mqtt://h', '--source', '/nowhere/heliomesh.tgz'], /tarball '\/nowhere\/heliomesh.tgz' does not exist/],
      [['--node-id', 'p', '--group', 'g', '--gateway', 'mqtt://h', '--source', 'x', '--gateway-ssh', 'a@b', '--node-password', 'p'], /either --gateway-ssh or --node-password/],
      [['--steps', 'i2c,wifi'], /unknown step 'wifi'/],
      [['--frobnicate'], /unknown argument '--frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const r = prepare(['--dry-run', ...args], root);
      assert.equal(r.code, 2, `${args.join(' ')} should fail`);
      assert.match(r.err, message);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--dry-run prints every step in order and touches nothing', () => {
  const root = freshRoot();
  const tarball = join(root, 'heliomesh-0.1.0.tgz');
  writeFileSync(tarball, 'not really a tarball: the dry run never opens it');
  try {
    const before = snapshot(root);
    const r = prepare(['--dry-run', ...fullArgs(tarball)], root);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(snapshot(root), before);

    const headers = [...r.out.matchAll(/^==> \[(\d)\/7\] (\w+):/gm)].map((m) => m[2]);
    assert.deepEqual(headers, STEPS);
    assert.match(r.out, /would set dtparam=i2c_arm=on in \/boot\/firmware\/config.txt/);
    assert.match(r.out, /would append i2c-dev to \/etc\/modules/);
    assert.match(r.out, /would run: tar -xzf .*heliomesh-0.1.0.tgz -C \/opt\/heliomesh/);
    assert.match(r.out, /npm ci --omit=dev/);
    assert.match(r.out, /would write \/etc\/heliomesh\/agent.yaml: nodeId pi-07, group g1, gateway mqtt:\/\/gateway.local:1883, password \(hidden\)/);
    assert.match(r.out, /would run: systemctl enable/);
    assert.doesNotMatch(r.out, /s3cret/, 'the password is never printed');
    assert.doesNotMatch(r.out, /^ {4}\+ /m, 'no command was executed');
    assert.match(r.out, /dry run finished: \d+ change\(s\) would be made/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('dry-run with --gateway-ssh shows the add-node call it would make', () => {
  const root = freshRoot();
  try {
    const r = prepare(['--dry-run', '--steps', 'register', '--node-id', 'pi-07', '--group', 'g1', '--gateway', 'mqtt://gw:1883',
      '--gateway-ssh', 'admin@gw', '--gateway-nodes-file', '/var/lib/heliomesh/nodes.json'], root);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /would run: ssh admin@gw heliomesh gateway add-node pi-07 --file \/var\/lib\/heliomesh\/nodes.json/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the I2C edits are idempotent: a second run changes nothing and says so', () => {
  const layouts: [string, string][] = [
    ['boot/firmware/config.txt', '# Bookworm\ndtparam=audio=on\n#dtparam=i2c_arm=on\n\n[pi4]\narm_boost=1\n'],
    ['boot/firmware/config.txt', 'dtparam=audio=on\ndtparam=i2c_arm=off\n'],
    ['boot/firmware/config.txt', 'dtparam=audio=on\n\n[pi4]\narm_boost=1\n'],
    ['boot/config.txt', '# Bullseye\ndtparam=audio=on\n'],
  ];
  for (const [configPath, initial] of layouts) {
    const root = mkdtempSync(join(tmpdir(), 'heliomesh-pi-'));
    try {
      mkdirSync(join(root, configPath, '..'), { recursive: true });
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, configPath), initial);
      // No /etc/modules at all: the script creates it.
      const first = prepare(['--steps', 'i2c'], root);
      assert.equal(first.code, 0, first.err);
      assert.match(first.out, /done: 2 change\(s\) made/);
      const config = readFileSync(join(root, configPath), 'utf8');
      const modules = readFileSync(join(root, 'etc/modules'), 'utf8');
      const active = config.split('\n').filter((l) => /^\s*[^#\s]/.test(l));
      assert.equal(active.filter((l) => l.startsWith('dtparam=i2c_arm')).length, 1, config);
      assert.ok(active.includes('dtparam=i2c_arm=on'), config);
      // The line must apply to every model, not only to the last [pi4] section.
      const sections = active.filter((l) => l.startsWith('['));
      const at = active.indexOf('dtparam=i2c_arm=on');
      const lastSectionBefore = active.slice(0, at).filter((l) => l.startsWith('[')).pop();
      assert.ok(lastSectionBefore === undefined || lastSectionBefore === '[all]', `${config} (sections: ${sections.join(' ')})`);
      assert.ok(config.includes('dtparam=audio=on'), 'other settings are kept');
      assert.deepEqual(modules.split('\n').filter((l) => l === 'i2c-dev'), ['i2c-dev']);

      const second = prepare(['--steps', 'i2c'], root);
      assert.equal(second.code, 0, second.err);
      assert.equal(readFileSync(join(root, configPath), 'utf8'), config);
      assert.equal(readFileSync(join(root, 'etc/modules'), 'utf8'), modules);
      assert.match(second.out, /dtparam=i2c_arm=on is already in/);
      assert.match(second.out, /already prepared: nothing changed/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
});

test('without an example config, agent.yaml holds the node settings, 0600, rewritten only when they change', () => {
  const root = freshRoot();
  try {
    const args = ['--steps', 'config,register', '--node-id', 'pi-07', '--group', 'g1', '--gateway', 'mqtts://gw.example:8883', '--node-password', "it's"];
    const first = prepare(args, root);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /WARNING: \/opt\/heliomesh\/deploy\/agent.example.yaml is missing, so only the node's keys are written/);
    const file = join(root, 'etc/heliomesh/agent.yaml');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const yaml = readFileSync(file, 'utf8');
    assert.match(yaml, /^nodeId: pi-07$/m);
    assert.match(yaml, /^group: g1$/m);
    assert.match(yaml, /^ {2}url: mqtts:\/\/gw.example:8883$/m);
    assert.match(yaml, /^ {2}password: 'it''s'$/m);

    const again = prepare(args, root);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /agent.yaml is up to date/);
    assert.equal(readFileSync(file, 'utf8'), yaml);

    // Without a password flag the one already written for this node is kept.
    const kept = prepare(['--steps', 'register,config', '--node-id', 'pi-07', '--group', 'g2', '--gateway', 'mqtts://gw.example:8883'], root);
    assert.equal(kept.code, 0, kept.err);
    assert.match(kept.out, /already holds credentials for pi-07/);
    const changed = readFileSync(file, 'utf8');
    assert.match(changed, /^group: g2$/m);
    assert.match(changed, /^ {2}password: 'it''s'$/m);

    // A different node has no credentials yet: the operator is told how to get them.
    const other = prepare(['--steps', 'register,config', '--node-id', 'pi-08', '--group', 'g1', '--gateway', 'mqtt://gw:1883'], root);
    assert.equal(other.code, 2);
    assert.match(other.err, /no credentials for pi-08; give --gateway-ssh/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the service step fails clearly when the installed tree has no agent unit', () => {
  const root = freshRoot();
  try {
    mkdirSync(join(root, 'opt/heliomesh'), { recursive: true });
    const r = prepare(['--steps', 'service'], root);
    assert.equal(r.code, 2);
    assert.match(r.err, /\/opt\/heliomesh\/deploy\/systemd\/heliomesh-agent.service does not exist/);

    mkdirSync(join(root, 'opt/heliomesh/deploy/systemd'), { recursive: true });
    writeFileSync(join(root, 'opt/heliomesh/deploy/systemd/heliomesh-agent.service'), '[Unit]\nDescription=test unit\n');
    const ok = prepare(['--steps', 'service'], root);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /not run \(HELIOMESH_ROOT is set\): install -m 0644 \/opt\/heliomesh\/deploy\/systemd\/heliomesh-agent.service \/etc\/systemd\/system\/heliomesh-agent.service/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the user step adds only what is missing', () => {
  const root = freshRoot();
  try {
    const group = join(root, 'etc/group');
    const passwd = join(root, 'etc/passwd');
    writeFileSync(group, 'root:x:0:\ni2c:x:998:\n');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n');
    const fresh = prepare(['--steps', 'user'], root);
    assert.equal(fresh.code, 0, fresh.err);
    assert.match(fresh.out, /group i2c exists/);
    assert.match(fresh.out, /not run \(HELIOMESH_ROOT is set\): groupadd --system gpio/);
    assert.match(fresh.out, /useradd --system --no-create-home --home-dir \/var\/lib\/heliomesh --shell \/usr\/sbin\/nologin --groups i2c,gpio heliomesh/);

    writeFileSync(group, 'root:x:0:\ni2c:x:998:pi,heliomesh\ngpio:x:997:pi\nheliomesh:x:990:\n');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nheliomesh:x:990:990::/var/lib/heliomesh:/usr/sbin/nologin\n');
    const partly = prepare(['--steps', 'user'], root);
    assert.equal(partly.code, 0, partly.err);
    assert.match(partly.out, /heliomesh is already in i2c/);
    assert.match(partly.out, /usermod -a -G gpio heliomesh/);
    assert.doesNotMatch(partly.out, /useradd|groupadd/);

    writeFileSync(group, 'root:x:0:\ni2c:x:998:pi,heliomesh\ngpio:x:997:heliomesh,pi\nheliomesh:x:990:\n');
    const done = prepare(['--steps', 'user'], root);
    assert.equal(done.code, 0, done.err);
    assert.match(done.out, /already prepared: nothing changed/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('registration over SSH keeps the password add-node prints, and asks only once', () => {
  const root = freshRoot();
  try {
    // A stand-in for ssh that records its arguments and answers as `heliomesh gateway add-node` does.
    const calls = join(root, 'ssh-calls');
    const fakeSsh = join(root, 'fake-ssh');
    const answer = (body: string) => {
      writeFileSync(fakeSsh, `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >> ${JSON.stringify(calls)}\n${body}\n`);
      chmodSync(fakeSsh, 0o755);
    };
    answer("echo 'node pi-07 added to /srv/heliomesh nodes.json'; echo 'password: Zq9-x_Y2'; echo 'Put it in the node config now.'");
    const env = { HELIOMESH_SSH: fakeSsh };
    const args = ['--steps', 'register,config', '--node-id', 'pi-07', '--group', 'g1', '--gateway', 'mqtt://gw:1883',
      '--gateway-ssh', 'admin@gw', '--gateway-nodes-file', '/srv/heliomesh nodes.json'];

    const first = prepare(args, root, env);
    assert.equal(first.code, 0, first.err);
    assert.deepEqual(readFileSync(calls, 'utf8').split('\n').filter(Boolean),
      ['-o BatchMode=yes admin@gw heliomesh gateway add-node pi-07 --file /srv/heliomesh\\ nodes.json']);
    assert.match(readFileSync(join(root, 'etc/heliomesh/agent.yaml'), 'utf8'), /^ {2}password: 'Zq9-x_Y2'$/m);
    assert.doesNotMatch(first.out, /Zq9-x_Y2/, 'the password is never printed');

    const second = prepare(args, root, env);
    assert.equal(second.code, 0, second.err);
    assert.match(second.out, /already holds credentials for pi-07/);
    assert.equal(readFileSync(calls, 'utf8').split('\n').filter(Boolean).length, 1, 'the gateway is not asked again');

    rmSync(join(root, 'etc/heliomesh'), { recursive: true });
    answer("echo 'heliomesh: node pi-07 already exists' >&2; exit 1");
    const refused = prepare(args, root, env);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /failed; check SSH access .* add --reinstall/);
    assert.equal(existsSync(join(root, 'etc/heliomesh/agent.yaml')), false);

    answer("echo 'something else'");
    const garbled = prepare(args, root, env);
    assert.equal(garbled.code, 2);
    assert.match(garbled.err, /had no 'password:' line/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('agent.yaml starts from the tree\'s example config and keeps an operator\'s later edits', () => {
  const root = freshRoot();
  try {
    const tree = join(root, 'opt/heliomesh');
    mkdirSync(join(tree, 'deploy'), { recursive: true });
    // The installed tree's dependencies: this checkout's, which include the same yaml library.
    symlinkSync(resolve(import.meta.dirname, '../../../node_modules'), join(tree, 'node_modules'));
    writeFileSync(join(tree, 'deploy/agent.example.yaml'), [
      '# Heliomesh agent (example)',
      'nodeId: CHANGE-ME',
      'group: g0',
      'gateway:',
      '  url: mqtt://gateway.local:1883',
      '  tls:',
      '    rejectUnauthorized: true',
      'hardware:',
      '  kind: virtual # the simulated node',
      'spool:',
      '  dir: /var/lib/heliomesh/spool',
      '',
    ].join('\n'));
    const args = ['--steps', 'register,config', '--node-id', 'pi-07', '--group', 'g1', '--gateway', 'mqtt://gw:1883'];
    const first = prepare([...args, '--fleet', 'f1', '--node-password', "p:w #1 'q'"], root);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, /starting from \/opt\/heliomesh\/deploy\/agent.example.yaml/);
    const file = join(root, 'etc/heliomesh/agent.yaml');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    assert.deepEqual(parseYaml(text), {
      nodeId: 'pi-07',
      group: 'g1',
      fleet: 'f1',
      gateway: { url: 'mqtt://gw:1883', tls: { rejectUnauthorized: true }, username: 'pi-07', password: "p:w #1 'q'" },
      hardware: { kind: 'virtual' },
      spool: { dir: '/var/lib/heliomesh/spool' },
    });
    assert.match(text, /# the simulated node/, 'comments are kept');

    writeFileSync(file, text + 'logLevel: debug\n', { mode: 0o600 });
    const again = prepare(args, root);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /already holds credentials for pi-07/);
    assert.match(again.out, /agent.yaml is up to date/);
    const kept = parseYaml(readFileSync(file, 'utf8')) as { logLevel: string; fleet: string; gateway: { password: string } };
    assert.equal(kept.logLevel, 'debug');
    assert.equal(kept.fleet, 'f1', 'a fleet set earlier stays when --fleet is not given');
    assert.equal(kept.gateway.password, "p:w #1 'q'");

    writeFileSync(join(root, 'etc/heliomesh/agent.yaml'), 'nodeId: [unclosed\n');
    const broken = prepare([...args, '--node-password', 'x'], root);
    assert.equal(broken.code, 2);
    assert.match(broken.err, /agent.yaml is not valid YAML/);
    assert.match(broken.err, /fix the YAML error above/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
