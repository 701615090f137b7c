'use strict';
// `node --require /sdk/js/preload.js main.js`: defines the global `MiniAppBridge` before the
// program runs, so it can call the Bridge without an import, as a WebView host injects it.
// The global is read-only and non-configurable, so program code cannot swap it for a shim.
const bridge = require('./miniapp-bridge.js');

Object.defineProperty(globalThis, 'MiniAppBridge', {
  value: bridge,
  writable: false,
  enumerable: false,
  configurable: false,
});

// A prewarmed worker (made by miniappd ahead of its program's launch) runs loader.js as its main
// module, which holds the program's entry point until the launch releases it.
