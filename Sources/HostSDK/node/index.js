'use strict';
// miniapp-host: the miniappd control API (spec/control-api.md) for Node host runtimes.
// Promises, no dependencies. The same small core as the Swift MiniAppHost library and the
// Python miniapp_host package:
//
//   const host = await connect('/run/miniappd/control.sock');
//   await host.provide(['payment.pay'], async (call) => ({ transactionId: 'tx-1' }));
//   const events = host.notifications();          // subscribe before launching
//   await host.call('programs.launch', { id: 'com.partner.app' });
//   for await (const n of events) { ... }          // n.method, n.params
//   await host.close();
//
// Every call has a timeout (TIMEOUT); a lost connection fails the calls in flight
// (HOST_UNAVAILABLE) and the client reconnects with backoff, registering its providers and
// inspector subscriptions again (connection.lost / connection.restored notifications). A line
// from the daemon that is not JSON-RPC, or a reply to a request never sent, drops the
// connection (PARSE_ERROR / INVALID_REQUEST for the calls in flight) instead of hanging.
const net = require('net');

const NUMBERS = {
  PARSE_ERROR: -32700, INVALID_REQUEST: -32600, METHOD_NOT_FOUND: -32601, INVALID_PARAMS: -32602, INTERNAL: -32603,
  PERMISSION_DENIED: -32001, RATE_LIMITED: -32002, QUOTA_EXCEEDED: -32003, TIMEOUT: -32004, HOST_UNAVAILABLE: -32005,
  DOMAIN_NOT_ALLOWED: -32006, MESSAGE_TOO_LARGE: -32007, NOT_FOUND: -32010, ALREADY_RUNNING: -32011,
  INVALID_PACKAGE: -32012, HOST_UPDATE_REQUIRED: -32013, UNAUTHORIZED: -32014,
};
const CODE_BY_NUMBER = Object.fromEntries(Object.entries(NUMBERS).map(([k, v]) => [v, k]));

/** A control API error: `code` is the spec's code string, `message` what to do, `data` the rest
 * of `error.data`. Throw it from a provider's handler to answer the program with that code. */
class HostError extends Error {
  constructor(code, message, data = {}, rpcCode = undefined) {
    super(message);
    this.name = 'HostError';
    this.code = code;
    this.data = data;
    this.rpcCode = rpcCode;
  }

  static fromRpc(e) {
    if (e === null || typeof e !== 'object') return new HostError('INVALID_REQUEST', 'miniappd sent an error that is not an object');
    const data = e.data && typeof e.data === 'object' && !Array.isArray(e.data) ? { ...e.data } : {};
    const number = Number.isInteger(e.code) ? e.code : undefined;
    const code = typeof data.code === 'string' ? data.code : CODE_BY_NUMBER[number] || 'INTERNAL';
    delete data.code;
    return new HostError(code, typeof e.message === 'string' ? e.message : 'error', data, number);
  }

  rpcObject() {
    const number = this.rpcCode !== undefined ? this.rpcCode : NUMBERS[this.code] !== undefined ? NUMBERS[this.code] : -32000;
    return { code: number, message: this.message, data: { ...this.data, code: this.code } };
  }
}

/** Connects to the control socket at `path`. Options: callTimeoutMs (30000), reconnect (true),
 * maxReconnectAttempts (40), reconnectInitialMs (50), reconnectMaxMs (2000), maxLineBytes (64 MiB). */
async function connect(path, options = {}) {
  const host = new Host(path, options);
  await host._open();
  return host;
}

class Host {
  constructor(path, options = {}) {
    this.path = path;
    this.callTimeoutMs = options.callTimeoutMs ?? 30000;
    this._reconnect = options.reconnect ?? true;
    this._maxAttempts = options.maxReconnectAttempts ?? 40;
    this._backoff = [options.reconnectInitialMs ?? 50, options.reconnectMaxMs ?? 2000];
    this._maxLine = options.maxLineBytes ?? 64 << 20;
    this._socket = null;
    this._generation = 0;
    this._nextId = 0;
    this._pending = new Map();
    this._providers = new Map();
    this._subscriptions = [];
    this._serving = new Map();
    this._queues = new Set();
    this._closed = false;
    this._terminal = null;
  }

  /** Calls a control method; resolves with its result or rejects with HostError (the daemon's
   * error, TIMEOUT after `timeoutMs`, HOST_UNAVAILABLE when the connection is lost first). */
  call(method, params = {}, timeoutMs = undefined) {
    if (this._terminal) return Promise.reject(this._terminal);
    if (!this._socket) return Promise.reject(new HostError('HOST_UNAVAILABLE', `not connected to miniappd at ${this.path} (reconnecting); try again`));
    const id = ++this._nextId;
    const limit = timeoutMs ?? this.callTimeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new HostError('TIMEOUT', `miniappd did not answer ${method} in ${limit} ms`));
      }, limit);
      this._pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          if (method === 'inspector.subscribe') this._subscriptions.push({ ...params });
          resolve(r);
        },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this._write({ jsonrpc: '2.0', id, method, params: params || {} });
    });
  }

  /** Serves the host-provided Bridge `methods` with `handler` (async (call) => result; throw
   * HostError to answer an error), now and after every reconnection. The handler's AbortSignal
   * `call.signal` fires when the daemon gives up on the call (bridge.cancel); its answer is then dropped. */
  async provide(methods, handler) {
    for (const m of methods) this._providers.set(m, handler);
    try {
      await this.call('bridge.provide', { methods: [...this._providers.keys()].sort() });
    } catch (e) {
      for (const m of methods) this._providers.delete(m);
      throw e;
    }
  }

  /** The notifications that arrive from now on, in order, as an async iterator of
   * {method, params}; ends when the host is closed. */
  notifications() {
    const queue = { items: [], waiter: null, done: this._closed };
    this._queues.add(queue);
    const self = this;
    return {
      [Symbol.asyncIterator]() { return this; },
      next() {
        if (queue.items.length) return Promise.resolve({ value: queue.items.shift(), done: false });
        if (queue.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => { queue.waiter = resolve; });
      },
      return() {
        self._queues.delete(queue);
        queue.done = true;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** Closes the connection: calls in flight fail HOST_UNAVAILABLE, handlers are aborted,
   * notification iterators end. Idempotent. */
  async close() {
    if (this._closed) return;
    this._closed = true;
    this._terminal = this._terminal || new HostError('HOST_UNAVAILABLE', 'the host closed its connection to miniappd');
    const socket = this._socket;
    this._socket = null;
    this._failAll(this._terminal);
    if (socket) socket.destroy();
    this._endQueues();
  }

  // -- connection ------------------------------------------------------------------------------

  _open() {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(this.path);
      const onError = (e) => reject(new HostError('HOST_UNAVAILABLE', `cannot connect to miniappd at ${this.path}: ${e.message}. Is the daemon running?`));
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.removeListener('error', onError);
        this._attach(socket);
        resolve();
      });
    });
  }

  _attach(socket) {
    const generation = ++this._generation;
    this._socket = socket;
    let buffered = [];
    let size = 0;
    let ended = false;
    const end = (error) => {
      if (ended) return;
      ended = true;
      socket.destroy();
      this._lost(error, generation);
    };
    socket.on('data', (chunk) => {
      let start = 0;
      let nl;
      while (!ended && (nl = chunk.indexOf(10, start)) !== -1) {
        buffered.push(chunk.subarray(start, nl));
        const line = Buffer.concat(buffered);
        buffered = [];
        size = 0;
        start = nl + 1;
        const violation = this._handle(line, generation);
        if (violation) return end(violation);
      }
      if (ended) return;
      buffered.push(chunk.subarray(start));
      size += chunk.length - start;
      if (size > this._maxLine) end(new HostError('MESSAGE_TOO_LARGE', `miniappd sent a line over ${this._maxLine} bytes`));
    });
    socket.on('error', (e) => end(new HostError('HOST_UNAVAILABLE', `lost the connection to miniappd: ${e.message}`)));
    socket.on('close', () => end(new HostError('HOST_UNAVAILABLE', 'miniappd closed the connection')));
  }

  _write(message, socket = this._socket) {
    if (!socket) return;
    socket.write(JSON.stringify(message) + '\n');
  }

  _lost(error, generation) {
    if (generation !== this._generation || this._closed) return;
    this._socket = null;
    this._generation++;
    const reported = this._terminal || error;
    this._failAll(reported);
    for (const s of this._serving.values()) s.abort();
    this._serving.clear();
    this._deliver('connection.lost', { code: reported.code, message: reported.message });
    if (!this._reconnect || this._terminal) {
      this._terminal = reported;
      this._closed = true;
      this._endQueues();
      return;
    }
    this._reconnectLoop();
  }

  async _reconnectLoop() {
    let [delay, limit] = this._backoff;
    let last = 'not connected';
    for (let attempt = 0; attempt < this._maxAttempts; attempt++) {
      await new Promise((r) => setTimeout(r, delay));
      if (this._closed) return;
      delay = Math.min(delay * 2, limit);
      try {
        await this._open();
      } catch (e) {
        last = e.message;
        continue;
      }
      this._register();
      return;
    }
    this._terminal = new HostError('HOST_UNAVAILABLE', `gave up reconnecting to miniappd at ${this.path} after ${this._maxAttempts} attempts: ${last}`);
    this._closed = true;
    this._endQueues();
  }

  async _register() {
    const subs = this._subscriptions;
    this._subscriptions = [];
    const calls = subs.map((p) => this.call('inspector.subscribe', p));
    if (this._providers.size) calls.push(this.call('bridge.provide', { methods: [...this._providers.keys()].sort() }));
    const results = await Promise.allSettled(calls);
    const failed = results.find((r) => r.status === 'rejected');
    this._deliver('connection.restored', failed ? { error: { code: failed.reason.code, message: failed.reason.message } } : {});
  }

  _failAll(error) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) p.reject(error);
  }

  _endQueues() {
    for (const q of this._queues) {
      q.done = true;
      if (q.waiter) { const w = q.waiter; q.waiter = null; w({ value: undefined, done: true }); }
    }
  }

  _deliver(method, params) {
    const note = { method, params };
    for (const q of this._queues) {
      if (q.waiter) { const w = q.waiter; q.waiter = null; w({ value: note, done: false }); } else q.items.push(note);
    }
  }

  // -- messages --------------------------------------------------------------------------------

  /** Handles one line; returns the protocol violation that ends the connection, if any. */
  _handle(line, generation) {
    let msg;
    try { msg = JSON.parse(line.toString('utf8')); } catch { msg = undefined; }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return new HostError('PARSE_ERROR', `miniappd sent a line that is not a JSON object: ${JSON.stringify(line.subarray(0, 80).toString('utf8'))}`);
    }
    if ('method' in msg) {
      const params = msg.params === undefined ? {} : msg.params;
      if (typeof msg.method !== 'string' || params === null || typeof params !== 'object' || Array.isArray(params)) {
        return new HostError('INVALID_REQUEST', 'miniappd sent a message whose method or params are malformed');
      }
      if ('id' in msg) this._serve(msg.method, msg.id, params, generation);
      else if (msg.method === 'bridge.cancel') {
        const key = JSON.stringify(params.id);
        const s = this._serving.get(key);
        if (s) { this._serving.delete(key); s.abort(); }
      } else this._deliver(msg.method, params);
      return null;
    }
    const isError = msg.error !== null && typeof msg.error === 'object';
    if (!('id' in msg) || (!('result' in msg) && !isError)) {
      return new HostError('INVALID_REQUEST', 'miniappd sent a message that is neither a request nor a response');
    }
    return this._respond(msg, isError ? HostError.fromRpc(msg.error) : null);
  }

  _respond(msg, error) {
    const id = msg.id;
    if (id === null) {
      // The daemon could not tie its answer to a request (UNAUTHORIZED at connect, a line it
      // could not parse): it concerns every call in flight.
      const e = error || new HostError('INVALID_REQUEST', 'miniappd sent a result with id null');
      if (e.code === 'UNAUTHORIZED') this._terminal = e;
      this._failAll(e);
      return null;
    }
    const pending = Number.isInteger(id) ? this._pending.get(id) : undefined;
    if (!pending) {
      // A late answer to a call that timed out here is harmless; an id never issued is not.
      if (Number.isInteger(id) && id > 0 && id <= this._nextId) return null;
      return new HostError('INVALID_REQUEST', `miniappd answered a request this host never sent (id ${JSON.stringify(id)})`);
    }
    this._pending.delete(id);
    if (error) pending.reject(error); else pending.resolve(msg.result);
    return null;
  }

  _serve(method, id, params, generation) {
    const socket = this._socket;
    const inner = params.method;
    const handler = method === 'bridge.call' && typeof inner === 'string' ? this._providers.get(inner) : undefined;
    if (!handler) {
      const what = method === 'bridge.call' ? `the Bridge method ${inner}` : method;
      return this._answer(socket, id, undefined, new HostError('METHOD_NOT_FOUND', `this host does not serve ${what}`));
    }
    const program = params.program;
    const callParams = params.params === undefined ? {} : params.params;
    if (!program || typeof program !== 'object' || typeof program.id !== 'string' || typeof params.workerId !== 'string'
        || callParams === null || typeof callParams !== 'object' || Array.isArray(callParams)) {
      return this._answer(socket, id, undefined, new HostError('INVALID_PARAMS', 'bridge.call params are malformed'));
    }
    const controller = new AbortController();
    const key = JSON.stringify(id);
    this._serving.set(key, controller);
    const call = {
      id, method: inner, params: callParams, program: { id: program.id, version: String(program.version ?? '') },
      workerId: params.workerId, signal: controller.signal,
    };
    Promise.resolve()
      .then(() => handler(call))
      .then((result) => [result, null], (e) => [undefined, e instanceof HostError ? e : new HostError('INTERNAL', `the host failed to serve ${inner}`)])
      .then(([result, error]) => {
        if (controller.signal.aborted || this._serving.get(key) !== controller) return;
        this._serving.delete(key);
        this._answer(socket, id, result, error);
      });
    return undefined;
  }

  _answer(socket, id, result, error) {
    if (!socket || socket !== this._socket) return;
    const msg = { jsonrpc: '2.0', id };
    if (error) msg.error = error.rpcObject(); else msg.result = result === undefined ? {} : result;
    this._write(msg, socket);
  }

  // -- typed helpers (spec/control-api.md and the README's additions) ---------------------------

  daemonInfo() { return this.call('daemon.info'); }
  install(path, allowDowngrade = false) { return this.call('packages.install', allowDowngrade ? { path, allowDowngrade: true } : { path }); }
  async packages() { return (await this.call('packages.list')).packages; }
  rollback(id) { return this.call('packages.rollback', { id }); }
  async remove(id) { await this.call('packages.remove', { id }); }
  launch(id, args = []) { return this.call('programs.launch', args.length ? { id, args } : { id }); }
  async stop(workerId, graceMillis = undefined, timeoutMs = undefined) {
    const params = graceMillis === undefined ? { workerId } : { workerId, graceMillis };
    return (await this.call('programs.stop', params, timeoutMs)).status;
  }
  async suspend(workerId) { await this.call('programs.suspend', { workerId }); }
  async resume(workerId) { await this.call('programs.resume', { workerId }); }
  async workers() { return (await this.call('programs.list')).workers; }
  async send(workerId, name, data = undefined) { await this.call('programs.send', data === undefined ? { workerId, name } : { workerId, name, data }); }
  async setSession(userId, claims = {}) { await this.call('session.set', { userId, claims }); }
  async subscribeInspector(programId = undefined) { await this.call('inspector.subscribe', programId ? { programId } : {}); }
  refreshPermissions() { return this.call('permissions.refresh'); }
  async checkUpdates(id = undefined) { return (await this.call('updates.check', id ? { id } : {})).updates; }
  prewarm(id) { return this.call('programs.prewarm', { id }); }
  restart(id) { return this.call('programs.restart', { id }); }
}

module.exports = { connect, Host, HostError };
