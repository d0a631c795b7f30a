// Preloaded into a bridge under test (NODE_OPTIONS=--require, so npm and sh pass it on): in the
// bridge's own process it records every file resolved through require (CommonJS, and ESM
// packages loaded through require), writes its pid to $ARMORCLAW_MODULE_PROBE_FILE.pid, and on
// SIGUSR2 writes what it saw and the main thread's memory to $ARMORCLAW_MODULE_PROBE_FILE, with
// a heap snapshot beside it when $ARMORCLAW_MODULE_PROBE_HEAP is set. Other node processes on
// the way (npm) are left alone.
'use strict';
const Module = require('node:module');
const { writeFileSync } = require('node:fs');
const v8 = require('node:v8');

const out = process.env.ARMORCLAW_MODULE_PROBE_FILE;
if (out && /worker[/\\]main\.[jt]s$/.test(process.argv[1] ?? '')) {
  const seen = new Set();
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (...args) {
    const file = resolve.apply(this, args);
    seen.add(file);
    return file;
  };
  process.on('SIGUSR2', () => {
    const heapSnapshot = process.env.ARMORCLAW_MODULE_PROBE_HEAP
      ? v8.writeHeapSnapshot(`${out}.heapsnapshot`)
      : undefined;
    const report = {
      argv: process.argv,
      execArgv: process.execArgv,
      files: [...seen],
      memory: process.memoryUsage(),
      heapSpaces: v8.getHeapSpaceStatistics(),
      heapSnapshot,
    };
    writeFileSync(out, JSON.stringify(report));
  });
  writeFileSync(`${out}.pid`, String(process.pid));
}
