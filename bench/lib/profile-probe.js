// Preloaded into the bridge by the voice bench (NODE_OPTIONS=--require): in the bridge's own
// process, SIGUSR2 starts a CPU profile of its main thread and the next SIGUSR2 stops it and
// writes it to $ARMORCLAW_PROFILE_FILE (a .cpuprofile, as `node --cpu-prof` writes); its pid is
// in $ARMORCLAW_PROFILE_FILE.pid from the start. Other node processes on the way (npm) are left
// alone.
'use strict';
const { writeFileSync } = require('node:fs');
const { Session } = require('node:inspector');

const out = process.env.ARMORCLAW_PROFILE_FILE;
if (out && /worker[/\\]main\.[jt]s$/.test(process.argv[1] ?? '')) {
  writeFileSync(`${out}.pid`, String(process.pid));
  let session;
  process.on('SIGUSR2', () => {
    if (!session) {
      session = new Session();
      session.connect();
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    const s = session;
    session = undefined;
    s.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(out, JSON.stringify(result.profile));
      s.disconnect();
    });
  });
}
