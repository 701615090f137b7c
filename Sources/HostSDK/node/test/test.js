'use strict';
// miniapp-host against a real miniappd with real jailed programs, and against a fake daemon
// that misbehaves. Run by the Swift suite HostSDKLanguageTests, which builds the world and
// passes it in the environment (MINIAPPD, MINIAPP_POLICY_DIR, MINIAPP_PAY_ZIP/_ID,
// MINIAPP_STUBBORN_ZIP/_ID, MINIAPP_WORK_DIR). Exits 0 when every check passed.
const assert = require('assert');
const fs = require('fs');
const net = require('net');
const path = require('path');
const { spawn } = require('child_process');
const { connect, HostError } = require('..');

const ENV = process.env;
const WORK = ENV.MINIAPP_WORK_DIR || '/tmp';
const SOCK = path.join(WORK, 'js.sock');
const STATE = path.join(WORK, 'js-state');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function expectError(promise, code, what) {
  try {
    const r = await promise;
    assert.fail(`${what}: expected ${code}, got ${JSON.stringify(r)}`);
  } catch (e) {
    assert.ok(e instanceof HostError, `${what}: ${e}`);
    assert.strictEqual(e.code, code, `${what}: ${e.code} ${e.message}`);
    return e;
  }
}

class Daemon {
  constructor() {
    const log = fs.openSync(path.join(WORK, 'js-daemon.log'), 'a');
    this.proc = spawn(ENV.MINIAPPD, ['--state-dir', STATE, '--control-socket', SOCK, '--policy-dir', ENV.MINIAPP_POLICY_DIR],
      { stdio: ['ignore', log, log] });
    this.exited = new Promise((r) => this.proc.once('exit', r));
  }

  async ready() {
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      assert.strictEqual(this.proc.exitCode, null, 'miniappd exited early');
      try {
        const probe = await connect(SOCK, { reconnect: false });
        await probe.call('daemon.info', {}, 2000);
        await probe.close();
        return this;
      } catch (e) {
        await sleep(50);
      }
    }
    throw new Error('miniappd did not become ready');
  }

  async stop(signal = 'SIGTERM') {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }
}

async function exitOf(notes, workerId, ms = 30000) {
  const timer = sleep(ms).then(() => { throw new Error(`no program.exited of ${workerId}`); });
  const find = (async () => {
    for (;;) {
      const { value: n, done } = await notes.next();
      if (done) throw new Error('notifications ended');
      if (n.method === 'program.exited' && n.params.workerId === workerId) return n.params;
    }
  })();
  return Promise.race([find, timer]);
}

function payHandler(served) {
  return async (call) => {
    served.push(call);
    return { transactionId: 'tx-' + (call.params.orderId || '') };
  };
}

async function realDaemonCases() {
  let daemon = await new Daemon().ready();
  try {
    let host = await connect(SOCK, { reconnectInitialMs: 20, reconnectMaxMs: 200, maxReconnectAttempts: 600 });
    const served = [];
    await host.provide(['payment.pay'], payHandler(served));
    const notes = host.notifications();
    const inst = await host.install(ENV.MINIAPP_PAY_ZIP);
    assert.strictEqual(inst.id, ENV.MINIAPP_PAY_ID);
    assert.strictEqual(inst.active, true);
    const [info, launched] = await Promise.all([host.daemonInfo(), host.launch(ENV.MINIAPP_PAY_ID, ['o-7'])]); // pipelined
    assert.ok(info.version);
    let exited = await exitOf(notes, launched.workerId);
    assert.strictEqual(exited.status, 0, JSON.stringify(exited));
    const call = served[0];
    assert.strictEqual(call.program.id, ENV.MINIAPP_PAY_ID);
    assert.strictEqual(call.method, 'payment.pay');
    assert.strictEqual(call.workerId, launched.workerId);
    assert.strictEqual(call.params.orderId, 'o-7');
    const e = await expectError(host.launch('com.e2e.absent'), 'NOT_FOUND', 'launch of an absent program');
    assert.ok(e.message);
    console.log('ok install, launch, payment.pay served, program.exited');

    // The daemon gives up on a slow provider (payment.pay times out after 1.5 s): the handler's
    // signal is aborted, the program sees TIMEOUT.
    let aborted = 0;
    await host.provide(['payment.pay'], (c) => new Promise((resolve) => {
      c.signal.addEventListener('abort', () => { aborted++; resolve({ transactionId: 'late' }); });
    }));
    const slow = await host.launch(ENV.MINIAPP_PAY_ID);
    exited = await exitOf(notes, slow.workerId);
    assert.strictEqual(exited.status, 4, JSON.stringify(exited));
    for (let i = 0; i < 100 && aborted === 0; i++) await sleep(50);
    assert.ok(aborted >= 1, 'the handler was not aborted'); // (the program may be restarted as a crash)
    await host.provide(['payment.pay'], payHandler(served));
    console.log('ok handler aborted when the daemon times the call out');

    // Restart: the provider is registered again on the new daemon.
    await daemon.stop();
    daemon = await new Daemon().ready();
    for (;;) {
      const { value: n } = await notes.next();
      if (n.method === 'connection.restored') { assert.strictEqual(n.params.error, undefined); break; }
    }
    const again = await host.launch(ENV.MINIAPP_PAY_ID, ['o-9']);
    exited = await exitOf(notes, again.workerId);
    assert.strictEqual(exited.status, 0, JSON.stringify(exited));
    assert.strictEqual(served[served.length - 1].params.orderId, 'o-9');
    await host.close();
    console.log('ok provider re-registered after a daemon restart');

    // SIGKILL mid-call: the call fails HOST_UNAVAILABLE well within its timeout.
    host = await connect(SOCK, { reconnect: false });
    let signalReady;
    const ready = new Promise((r) => { signalReady = r; });
    await host.provide(['ui.toast'], async () => { signalReady(); return {}; }); // it ignores SIGTERM from now on
    await host.install(ENV.MINIAPP_STUBBORN_ZIP);
    const stubborn = await host.launch(ENV.MINIAPP_STUBBORN_ID);
    await ready;
    const start = Date.now();
    const stop = host.stop(stubborn.workerId, 60000, 20000);
    stop.catch(() => {});
    await sleep(500);
    await daemon.stop('SIGKILL');
    await expectError(stop, 'HOST_UNAVAILABLE', 'programs.stop on a killed daemon');
    assert.ok(Date.now() - start < 10000);
    await expectError(host.daemonInfo(), 'HOST_UNAVAILABLE', 'a call after the loss');
    console.log('ok daemon killed mid-call: HOST_UNAVAILABLE within the timeout');
  } finally {
    await daemon.stop('SIGKILL');
  }
}

const rid = (line) => JSON.stringify(JSON.parse(line).id);
const FAKE_CASES = [
  ['malformed line', () => ['this is not json'], 'PARSE_ERROR'],
  ['array line', () => ['[1,2,3]'], 'PARSE_ERROR'],
  ['reply to no request', () => ['{"jsonrpc":"2.0","id":777,"result":{}}'], 'INVALID_REQUEST'],
  ['reply with a string id', () => ['{"jsonrpc":"2.0","id":"x","result":{}}'], 'INVALID_REQUEST'],
  ['neither request nor response', () => ['{"jsonrpc":"2.0","id":1}'], 'INVALID_REQUEST'],
  ['method not a string', () => ['{"jsonrpc":"2.0","method":5}'], 'INVALID_REQUEST'],
  ['params not an object', () => ['{"jsonrpc":"2.0","method":"program.exited","params":[1]}'], 'INVALID_REQUEST'],
  ['connection drop mid-call', () => [null], 'HOST_UNAVAILABLE'],
  ['null-id refusal', () => ['{"jsonrpc":"2.0","id":null,"error":{"code":-32014,"message":"no","data":{"code":"UNAUTHORIZED"}}}', null], 'UNAUTHORIZED'],
  ['no answer', () => [], 'TIMEOUT'],
  ["the daemon's error", (l) => [`{"jsonrpc":"2.0","id":${rid(l)},"error":{"code":-32010,"message":"gone","data":{"code":"NOT_FOUND"}}}`], 'NOT_FOUND'],
];

function fakeDaemon(sockPath, script, greeting = []) {
  const received = [];
  const server = net.createServer((conn) => {
    for (const g of greeting) conn.write(g + '\n');
    let buf = '';
    conn.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        received.push(line);
        for (const out of script(line)) {
          if (out === null) return conn.destroy();
          conn.write(out + '\n');
        }
      }
    });
    conn.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(sockPath, () => resolve({ server, received })));
}

async function fakeDaemonCases() {
  const sockPath = path.join(WORK, 'js-fake.sock');
  const fresh = () => { if (fs.existsSync(sockPath)) fs.unlinkSync(sockPath); };
  for (const [name, script, code] of FAKE_CASES) {
    fresh();
    const { server } = await fakeDaemon(sockPath, script);
    const host = await connect(sockPath, { reconnect: false, callTimeoutMs: 1000 });
    const start = Date.now();
    await expectError(host.call('daemon.info'), code, name);
    assert.ok(Date.now() - start < 5000, name);
    await host.close();
    server.close();
  }
  console.log(`ok ${FAKE_CASES.length} misbehaving-daemon cases give typed errors`);

  fresh();
  let fake = await fakeDaemon(sockPath, (l) => ['{"jsonrpc":"2.0","method":"something.new","params":{"x":1}}', `{"jsonrpc":"2.0","id":${rid(l)},"result":{}}`]);
  let host = await connect(sockPath, { reconnect: false });
  const notes = host.notifications();
  await host.call('daemon.info');
  const { value: n } = await notes.next();
  assert.deepStrictEqual(n, { method: 'something.new', params: { x: 1 } });
  await host.close();
  fake.server.close();
  console.log('ok an unknown notification is passed through');

  fresh();
  fake = await fakeDaemon(sockPath, () => [], [
    '{"jsonrpc":"2.0","id":"q-1","method":"host.reboot","params":{}}',
    '{"jsonrpc":"2.0","id":"p-1","method":"bridge.call","params":{"method":"payment.pay","params":{},"program":{"id":"a","version":"1"},"workerId":"w-1"}}',
  ]);
  host = await connect(sockPath, { reconnect: false });
  for (let i = 0; i < 100 && fake.received.length < 2; i++) await sleep(50);
  const answers = fake.received.map((l) => JSON.parse(l));
  assert.deepStrictEqual(answers.map((a) => a.id), ['q-1', 'p-1']);
  assert.ok(answers.every((a) => a.error.data.code === 'METHOD_NOT_FOUND'));
  await host.close();
  fake.server.close();
  console.log('ok requests this host does not serve are refused METHOD_NOT_FOUND');
}

(async () => {
  await fakeDaemonCases();
  if (ENV.MINIAPPD) await realDaemonCases();
  console.log('all passed');
  process.exit(0);
})().catch((e) => {
  console.error('FAILED', e);
  process.exit(1);
});
