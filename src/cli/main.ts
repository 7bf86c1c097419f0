/**
 * The `forgeline` command (bin/forgeline runs this file through tsx). Commands, options and exit
 * codes are defined in program.ts; `forgeline --help` and `forgeline <command> --help` list them.
 */
import { runCli } from './program';

// `forgeline registry --json | head`: a reader that stops early is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
