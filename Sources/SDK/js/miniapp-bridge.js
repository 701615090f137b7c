'use strict';
/**
 * MiniAppBridge for Node.js mini-programs: JSON-RPC 2.0 over the Bridge socket (fd 3,
 * newline-delimited JSON; see spec/bridge-protocol.md).
 *
 *   const r = await MiniAppBridge.call('storage.get', { key: 'k' });   // resolves with `result`
 *   MiniAppBridge.call('payment.pay', {...}).catch(err => err.code);    // 'PERMISSION_DENIED'
 *   MiniAppBridge.on('lifecycle.show', data => { ... });                // host `event` notifications
 *   MiniAppBridge.onUpdateReady(({ version }) => { ... });              // a new version is staged
 *
 * - Calls may be pipelined; replies are matched by id, in any order.
 * - A rejected call gives an Error with `code` (error.data.code, e.g. 'INVALID_PARAMS'),
 *   `message`, `rpcCode` (the JSON-RPC number) and `data`. When the connection closes, pending
 *   and later calls reject with code 'BRIDGE_CLOSED' (an SDK code, never sent by the daemon).
 * - The socket does not keep the process alive while no call is pending, so a program exits
 *   when its work is done. A program that only waits for events calls
 *   `MiniAppBridge.keepAlive(true)`.
 * - A request over the Bridge's message limit is refused here, before it is sent, with code
 *   'MESSAGE_TOO_LARGE' (the daemon would answer it with an error it cannot match to the call,
 *   and close the connection). The limit comes from MINIAPP_BRIDGE_MAX_BYTES, which the daemon
 *   sets in every worker (default 1 MiB, newline excluded).
 * - An error answer with id null (one the daemon could not match to a call) fails every call
 *   in flight with its code: the SDK cannot tell which call it answers, and failing them beats
 *   leaving one pending forever. After MESSAGE_TOO_LARGE the daemon closes the connection.
 * - The fd comes from MINIAPP_BRIDGE_FD (default 3).
 *
 * `node --require /sdk/js/preload.js main.js` defines the global `MiniAppBridge`, as a WebView
 * host injects it; `require('/sdk/js/miniapp-bridge.js')` works too.
 */

const net = require('net');

const CODE_BY_NUMBER = {
  '-32700': 'PARSE_ERROR', '-32600': 'INVALID_REQUEST', '-32601': 'METHOD_NOT_FOUND',
  '-32602': 'INVALID_PARAMS', '-32603': 'INTERNAL', '-32001': 'PERMISSION_DENIED',
  '-32002': 'RATE_LIMITED', '-32003': 'QUOTA_EXCEEDED', '-32004': 'TIMEOUT',
  '-32005': 'HOST_UNAVAILABLE', '-32006': 'DOMAIN_NOT_ALLOWED', '-32007': 'MESSAGE_TOO_LARGE',
};

/** The error a rejected call gives: `code` is the stable string of the spec's error table. */
const { BridgeError } = require('./bridge-error.js');

function errorFromWire(error) {
  const e = error && typeof error === 'object' ? error : {};
  const data = e.data && typeof e.data === 'object' ? e.data : undefined;
  const code = (data && typeof data.code === 'string' && data.code) || CODE_BY_NUMBER[String(e.code)] || 'INTERNAL';
  const message = typeof e.message === 'string' ? e.message : 'bridge call failed';
  return new BridgeError(code, message, typeof e.code === 'number' ? e.code : -32603, data);
}

/** The message limit the daemon announced (MINIAPP_BRIDGE_MAX_BYTES), else the spec's 1 MiB. */
function envMaxBytes() {
  const n = Number.parseInt(process.env.MINIAPP_BRIDGE_MAX_BYTES || '', 10);
  return Number.isInteger(n) && n > 0 ? n : 1 << 20;
}

/**
 * A bridge over file descriptor `fd`. Most programs use the default instance.
 * `options.maxBytes`: the message limit (default: MINIAPP_BRIDGE_MAX_BYTES or 1 MiB).
 */
function createBridge(fd, options) {
  const maxBytes = options && Number.isInteger(options.maxBytes) && options.maxBytes > 0 ? options.maxBytes : envMaxBytes();
  let socket = null;
  let closed = false;
  let nextId = 1;
  let keep = false;
  let buffer = '';
  const pending = new Map();
  const listeners = new Map();

  function updateRef() {
    if (!socket) return;
    if (keep || pending.size > 0) socket.ref(); else socket.unref();
  }

  /**
   * Opens the socket once. `prime`: it is opened ahead of any call (`on`, `keepAlive`; a
   * prewarmed worker's loader does both while it waits): an empty write then runs node's lazily
   * set-up write path (~0.3 ms at a socket's first write), so the program's first call does not
   * pay it. It sends nothing: a zero-length write on a stream socket transmits no bytes.
   * The read path is primed too: node compiles its stream-reading code (the readable buffer,
   * the UTF-8 decoder, the 'data' emit) and our onData/onMessage at their first use, which in a
   * prewarmed worker was the launch event itself, on the launch's critical path (measured: the
   * launch event reached the loader's listener ~0.3 ms later than a second event did). An empty
   * JSON object pushed into the socket's readable side now, before any byte was read from the
   * fd (reading starts on a later loop turn), takes that path at once; onMessage ignores it (no
   * id, no method), so no call or listener ever sees it, and nothing is sent.
   */
  function open(prime) {
    if (socket || closed) return socket;
    try {
      socket = new net.Socket({ fd, readable: true, writable: true });
    } catch (_) {
      closed = true;  // no Bridge on this fd: every call rejects with BRIDGE_CLOSED
      return null;
    }
    socket.setEncoding('utf8');
    socket.on('data', onData);
    socket.on('error', () => shutdown());
    socket.on('close', () => shutdown());
    updateRef();
    if (prime) {
      socket.write('');
      socket.push(Buffer.from('{}\n'));
    }
    return socket;
  }

  function shutdown() {
    if (closed) return;
    closed = true;
    failPending(() => new BridgeError('BRIDGE_CLOSED', 'the Bridge connection is closed', -32603));
  }

  function failPending(makeError) {
    const calls = Array.from(pending.values());
    pending.clear();
    updateRef();
    for (const { reject } of calls) reject(makeError());
  }

  function onData(chunk) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.length > 0) onMessage(line);
    }
  }

  function onMessage(line) {
    let msg;
    try { msg = JSON.parse(line); } catch (_) { return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.id === null && msg.error !== undefined) {
      failPending(() => errorFromWire(msg.error));
      return;
    }
    if (msg.id !== undefined && msg.id !== null && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      updateRef();
      if (msg.error !== undefined) reject(errorFromWire(msg.error)); else resolve(msg.result);
      return;
    }
    if (msg.id === undefined && msg.method === 'event' && msg.params && typeof msg.params.name === 'string') {
      dispatch(msg.params.name, msg.params.data);
    }
  }

  function dispatch(name, data) {
    for (const key of [name, '*']) {
      for (const fn of listeners.get(key) || []) {
        try { key === '*' ? fn(name, data) : fn(data); } catch (err) { process.nextTick(() => { throw err; }); }
      }
    }
  }

  /** Calls `method` with `params`; resolves with the result or rejects with a BridgeError. */
  function call(method, params) {
    if (typeof method !== 'string' || method.length === 0) {
      return Promise.reject(new BridgeError('INVALID_REQUEST', 'method must be a non-empty string', -32600));
    }
    open();
    if (closed) return Promise.reject(new BridgeError('BRIDGE_CLOSED', 'the Bridge connection is closed', -32603));
    const id = nextId++;
    const request = { jsonrpc: '2.0', id, method };
    if (params !== undefined) request.params = params;
    let line;
    try { line = JSON.stringify(request); } catch (err) {
      return Promise.reject(new BridgeError('INVALID_PARAMS', 'params are not serializable: ' + err.message, -32602));
    }
    // A UTF-16 unit is at most 3 UTF-8 bytes: short lines need no byte count.
    const size = line.length * 3 <= maxBytes ? 0 : Buffer.byteLength(line, 'utf8');
    if (size > maxBytes) {
      return Promise.reject(new BridgeError('MESSAGE_TOO_LARGE',
        `${method}: the request is ${size} bytes; the Bridge limit is ${maxBytes} (MINIAPP_BRIDGE_MAX_BYTES): send less per call`,
        -32007, { code: 'MESSAGE_TOO_LARGE', limit: maxBytes }));
    }
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      updateRef();
      socket.write(line + '\n');
    });
  }

  /** Subscribes `fn(data)` to host event `name` ('*' receives `fn(name, data)` for all). */
  function on(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    open(true);
    if (!listeners.has(name)) listeners.set(name, []);
    listeners.get(name).push(fn);
    return () => off(name, fn);
  }

  /** Removes a listener added with `on`. */
  function off(name, fn) {
    const list = listeners.get(name);
    if (!list) return;
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  /**
   * Subscribes `fn({version})` to `update.ready`: the daemon staged a newer version of this
   * program, which runs from its next launch (WeChat's UpdateManager.onUpdateReady). Returns
   * the unsubscribe function, like `on`.
   */
  function onUpdateReady(fn) {
    return on('update.ready', fn);
  }

  /** Keeps the process alive while idle (for programs that only wait for events). */
  function keepAlive(on) {
    keep = !!on;
    open(true);
    updateRef();
  }


  return Object.freeze({ call, on, off, onUpdateReady, keepAlive, maxBytes, BridgeError });
}

const envFd = Number.parseInt(process.env.MINIAPP_BRIDGE_FD || '3', 10);
const defaultBridge = createBridge(Number.isInteger(envFd) && envFd >= 0 ? envFd : 3);

module.exports = Object.freeze({
  call: defaultBridge.call,
  on: defaultBridge.on,
  off: defaultBridge.off,
  onUpdateReady: defaultBridge.onUpdateReady,
  keepAlive: defaultBridge.keepAlive,
  maxBytes: defaultBridge.maxBytes,
  BridgeError,
  createBridge,
});
