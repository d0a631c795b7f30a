#!/usr/bin/env node
// The `armorclaw` command. setup.sh links it onto PATH (/usr/local/bin/armorclaw), so tsx and
// the TypeScript sources are resolved from this file's real location, never from the caller's
// working directory or the link's.
const fs = require('node:fs');
const path = require('node:path');

const here = path.dirname(fs.realpathSync(__filename));
require(require.resolve('tsx/cjs', { paths: [here] }));
require(path.join(here, 'main.ts'));
