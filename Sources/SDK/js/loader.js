'use strict';
// The prewarm loader for node mini-programs (miniappd runs it, never a program):
//
//   node --require /sdk/js/preload.js /sdk/js/loader.js /app/main.js      (MINIAPP_PREWARM=1)
//
// A prewarmed worker is made ahead of its program's launch: node starts, the preload defines
// the global `MiniAppBridge`, and this loader opens the Bridge's socket (node's stream
// machinery is set up now, not at the program's first call) and returns to the event loop.
// The program's entry point runs only when the daemon releases the worker with the event
// `lifecycle.launch` ({"args": [...]}): then as the main module, with
// `process.argv = [node, entry, ...args]`, as `node /app/main.js args…` would.
// The event arrives on the SDK's own connection, so whatever the daemon sends after it is
// already the program's; nothing is read that the program would miss.
const Module = require('module');

const entry = process.argv[2];
if (typeof entry !== 'string') {
  process.stderr.write('usage: loader.js ENTRY (run by miniappd for prewarmed workers)\n');
  process.exit(2);
}
process.argv.splice(1, 2, entry);

const bridge = globalThis.MiniAppBridge;
bridge.keepAlive(true); // held: the event loop waits on the Bridge
const off = bridge.on('lifecycle.launch', (data) => {
  off();
  delete process.env.MINIAPP_PREWARM;
  const args = data && Array.isArray(data.args) ? data.args.filter((a) => typeof a === 'string') : [];
  process.argv.push(...args);
  bridge.keepAlive(false); // the program decides from now on, as in a direct start
  Module.runMain(entry);
});
