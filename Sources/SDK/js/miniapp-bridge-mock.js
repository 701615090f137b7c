'use strict';
/**
 * An in-process mock of MiniAppBridge for unit tests, in Node.js or a browser bundle: the same
 * rules file as `miniapp mock-bridge` (README "Mock bridge"), the same `call`/`on` API and the
 * same errors as the real SDK (a rejected call gives an Error with `code`, `message`, `rpcCode`,
 * `data`).
 *
 *   const { createMockBridge } = require('miniapp-bridge-mock');
 *   const bridge = createMockBridge({ rules: [
 *     { method: 'payment.pay', params: { currency: 'USD' }, result: { transactionId: 'tx-1' } },
 *     { method: 'geolocation.*', error: { code: 'PERMISSION_DENIED', message: 'no' } },
 *   ] });
 *   await bridge.call('payment.pay', { orderId: 'o-1', currency: 'USD' });   // { transactionId: 'tx-1' }
 *   bridge.calls;                                                            // every call, in order
 *   bridge.emit('lifecycle.show', {});                                       // host events
 *
 * Rules: ordered, first match wins; `method` exact or a glob (`*`, `?`); `params` a subset the
 * call must contain; `result` or `error: {code, message, data?}`; `delayMs`; `times` (the rule
 * answers that many calls). Unmatched calls: `storage.*` from an in-memory map and
 * `system.info` (`options.programId`, `version`, `hostVersion`), else METHOD_NOT_FOUND naming
 * the method. No Node.js module is used (bridge-error.js, beside it, neither), so bundlers can
 * include it as is.
 */

const NUMBER_BY_CODE = {
  PARSE_ERROR: -32700, INVALID_REQUEST: -32600, METHOD_NOT_FOUND: -32601, INVALID_PARAMS: -32602,
  INTERNAL: -32603, PERMISSION_DENIED: -32001, RATE_LIMITED: -32002, QUOTA_EXCEEDED: -32003,
  TIMEOUT: -32004, HOST_UNAVAILABLE: -32005, DOMAIN_NOT_ALLOWED: -32006, MESSAGE_TOO_LARGE: -32007,
  NOT_FOUND: -32010, ALREADY_RUNNING: -32011, INVALID_PACKAGE: -32012, HOST_UPDATE_REQUIRED: -32013,
  UNAUTHORIZED: -32014,
};
const RULE_KEYS = ['method', 'params', 'result', 'error', 'delayMs', 'times'];

// The error a rejected call gives (the SDK's and the mock's: bridge-error.js, no Node.js module).
const { BridgeError } = require('./bridge-error.js');

function isObject(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }

function integerIn(rule, name, lo, hi, where) {
  const v = rule[name];
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < lo || v > hi) throw new TypeError(`${where}: "${name}" must be an integer in ${lo}…${hi}`);
  return v;
}

function parseError(e, where) {
  if (!isObject(e) || typeof e.code !== 'string' || !/^[A-Z0-9_]{1,64}$/.test(e.code) || typeof e.message !== 'string') {
    throw new TypeError(`${where}: "error" must be {"code": "PERMISSION_DENIED" (A-Z, 0-9, _), "message": "…"}`);
  }
  const extra = Object.keys(e).find(k => !['code', 'message', 'data'].includes(k));
  if (extra) throw new TypeError(`${where}: "error" has an unknown member "${extra}" (allowed: code, message, data)`);
  if (e.data !== undefined && !isObject(e.data)) throw new TypeError(`${where}: "error.data" must be an object`);
  return { code: e.code, message: e.message, rpcCode: NUMBER_BY_CODE[e.code] || -32000, data: Object.assign({}, e.data, { code: e.code }) };
}

/** Validates a rules document (an object or its JSON text) as strictly as the Swift parser. */
function parseRules(doc) {
  if (typeof doc === 'string') doc = JSON.parse(doc);
  if (!isObject(doc) || !Array.isArray(doc.rules)) throw new TypeError('the rules file must be {"rules": [ … ]}');
  const extraTop = Object.keys(doc).find(k => k !== 'rules');
  if (extraTop) throw new TypeError(`the rules file has an unknown member "${extraTop}"; only "rules" is allowed`);
  return doc.rules.map((r, i) => {
    const where = `rules[${i}]`;
    if (!isObject(r)) throw new TypeError(`${where}: must be an object`);
    const extra = Object.keys(r).find(k => !RULE_KEYS.includes(k));
    if (extra) throw new TypeError(`${where}: unknown member "${extra}" (allowed: ${RULE_KEYS.join(', ')})`);
    if (typeof r.method !== 'string' || r.method.length === 0) throw new TypeError(`${where}: needs "method": a method name or glob such as "payment.*"`);
    if (r.params !== undefined && !isObject(r.params)) throw new TypeError(`${where}: "params" must be an object (the members to match)`);
    if ((r.result === undefined) === (r.error === undefined)) throw new TypeError(`${where}: needs exactly one of "result" or "error"`);
    return {
      method: r.method, params: r.params, result: r.result,
      error: r.error === undefined ? undefined : parseError(r.error, where),
      delayMs: integerIn(r, 'delayMs', 0, 60000, where) || 0, times: integerIn(r, 'times', 1, 1000000, where), used: 0,
    };
  });
}

/** `*` any run of characters (dots included), `?` exactly one. */
function globMatches(pattern, text) {
  const re = '^' + pattern.split('').map(c => c === '*' ? '[\\s\\S]*' : c === '?' ? '[\\s\\S]' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')).join('') + '$';
  return new RegExp(re, 'u').test(text);
}

/** Every member of `want` is in `have` with a value containing it (objects recursively). */
function subset(have, want) {
  if (!isObject(want)) return JSON.stringify(have) === JSON.stringify(want);
  if (!isObject(have)) return false;
  return Object.keys(want).every(k => Object.prototype.hasOwnProperty.call(have, k) && subset(have[k], want[k]));
}

function wireError(code, message) {
  return { code, message, rpcCode: NUMBER_BY_CODE[code] || -32000, data: { code } };
}

function builtin(method, p, store, identity) {
  if (method === 'system.info') return { result: identity };
  if (['storage.get', 'storage.set', 'storage.remove'].includes(method)) {
    if (typeof p.key !== 'string' || p.key.length === 0) return { error: wireError('INVALID_PARAMS', `${method}: params.key must be a string of 1…256 bytes`) };
    if (method === 'storage.get') return { result: { value: store.has(p.key) ? store.get(p.key) : null } };
    if (method === 'storage.remove') { store.delete(p.key); return { result: {} }; }
    if (p.value === undefined) return { error: wireError('INVALID_PARAMS', 'storage.set: params.value is required (any JSON)') };
    store.set(p.key, p.value);
    return { result: {} };
  }
  if (method === 'storage.keys') {
    const prefix = typeof p.prefix === 'string' ? p.prefix : '';
    return { result: { keys: Array.from(store.keys()).filter(k => k.startsWith(prefix)).sort() } };
  }
  return { error: wireError('METHOD_NOT_FOUND', `the mock bridge has no rule for ${method}: add {"method": "${method}", "result": {…}} to the rules file`) };
}

/**
 * A mock bridge answering by `rules` (a rules document or its JSON text). `options`:
 * `programId`, `version`, `hostVersion` (what `system.info` answers).
 */
function createMockBridge(rules, options) {
  const parsed = parseRules(rules);
  const o = options || {};
  const identity = { programId: o.programId || 'com.example.mock', version: o.version || '0.0.0', hostVersion: o.hostVersion || '1.1.0' };
  const store = new Map();
  const listeners = new Map();
  const calls = [];

  function answer(method, params) {
    const p = params === undefined ? {} : params;
    const rule = parsed.find(r => (r.times === undefined || r.used < r.times) && globMatches(r.method, method) && (r.params === undefined || subset(p, r.params)));
    if (rule) { rule.used += 1; return { result: rule.result, error: rule.error, delayMs: rule.delayMs }; }
    return Object.assign({ delayMs: 0 }, builtin(method, p, store, identity));
  }

  /** Calls `method`; resolves with the rule's result or rejects with a BridgeError. */
  function call(method, params) {
    if (typeof method !== 'string' || method.length === 0) {
      return Promise.reject(new BridgeError('INVALID_REQUEST', 'method must be a non-empty string', -32600));
    }
    if (params !== undefined && !isObject(params)) {
      return Promise.reject(new BridgeError('INVALID_PARAMS', 'params must be an object', -32602, { code: 'INVALID_PARAMS' }));
    }
    let wireParams;
    try { wireParams = params === undefined ? undefined : JSON.parse(JSON.stringify(params)); } catch (err) {
      return Promise.reject(new BridgeError('INVALID_PARAMS', 'params are not serializable: ' + err.message, -32602));
    }
    const a = answer(method, wireParams);
    calls.push({ method, params: wireParams, result: a.result, error: a.error && { code: a.error.code, message: a.error.message } });
    // Copies, as the wire gives: the code under test cannot change the rules through a result.
    const settle = a.error
      ? () => Promise.reject(new BridgeError(a.error.code, a.error.message, a.error.rpcCode, JSON.parse(JSON.stringify(a.error.data))))
      : () => Promise.resolve(a.result === undefined ? null : JSON.parse(JSON.stringify(a.result)));
    if (!a.delayMs) return Promise.resolve().then(settle);
    return new Promise(resolve => setTimeout(resolve, a.delayMs)).then(settle);
  }

  function on(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    if (!listeners.has(name)) listeners.set(name, []);
    listeners.get(name).push(fn);
    return () => off(name, fn);
  }

  function off(name, fn) {
    const list = listeners.get(name) || [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  /** Delivers a host event, as the daemon's `event` notification would. */
  function emit(name, data) {
    for (const fn of (listeners.get(name) || []).slice()) fn(data);
    for (const fn of (listeners.get('*') || []).slice()) fn(name, data);
  }

  return Object.freeze({ call, on, off, emit, keepAlive() {}, calls, storage: store, maxBytes: 1 << 20, BridgeError });
}

const api = Object.freeze({ createMockBridge, parseRules, BridgeError });
if (typeof module === 'object' && module.exports) module.exports = api;
else globalThis.MiniAppBridgeMock = api;
