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

// A prewarmed worker (MINIAPP_PREWARM=1, made by miniappd ahead of the program's launch): node
// and the SDK are loaded; the program's entry point runs only once the daemon releases the
// worker with the event `lifecycle.launch` ({"args": [...]}), whose args are appended to
// process.argv. The preload blocks here, before node loads the entry point; it reads the socket
// one byte at a time so that nothing after the event's line is taken from the program's Bridge.
if (process.env.MINIAPP_PREWARM === '1') {
  delete process.env.MINIAPP_PREWARM;
  const fs = require('fs');
  const fd = Number.parseInt(process.env.MINIAPP_BRIDGE_FD || '3', 10);
  const one = Buffer.alloc(1);
  const readLine = () => {
    const bytes = [];
    for (;;) {
      let n;
      try { n = fs.readSync(fd, one, 0, 1, null); } catch (err) {
        if (err.code === 'EAGAIN' || err.code === 'EINTR') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); continue; }
        throw err;
      }
      if (n === 0) return null;
      if (one[0] === 10) return Buffer.from(bytes).toString('utf8');
      bytes.push(one[0]);
    }
  };
  for (;;) {
    const line = readLine();
    if (line === null) process.exit(0);  // the daemon dropped this worker before its launch
    let msg;
    try { msg = JSON.parse(line); } catch (_) { continue; }
    const p = msg && msg.method === 'event' && msg.params;
    if (p && p.name === 'lifecycle.launch') {
      const args = (p.data && Array.isArray(p.data.args) ? p.data.args : []).filter((a) => typeof a === 'string');
      process.argv.push(...args);
      break;
    }
  }
}
