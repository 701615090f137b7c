'use strict';
/**
 * The error a rejected Bridge call gives: `code` is the stable string of the spec's error table,
 * `rpcCode` the JSON-RPC number, `data` what the error carried. One definition for the SDK
 * (miniapp-bridge.js) and the mock (miniapp-bridge-mock.js); it uses no Node.js module, so a
 * browser bundle of the mock can include it.
 */
class BridgeError extends Error {
  constructor(code, message, rpcCode, data) {
    super(message);
    this.name = 'BridgeError';
    this.code = code;
    this.rpcCode = rpcCode;
    this.data = data;
  }
}

module.exports = { BridgeError };
