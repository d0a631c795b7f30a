/** Entry point of the `armorclaw` command (cli/armorclaw.js, `npm run cli`). See cli/cli.ts. */
import { runCli } from './cli';

void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
