import { ForgelineError } from '../ports/errors';

/**
 * Run an entry point: configuration and other user-fixable errors print one clear message and
 * exit 2, with no stack trace; unexpected errors print their stack and exit 1.
 */
export function runMain(main: () => Promise<void | number>): void {
  main().then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof ForgelineError && err.terminal) {
        console.error(`forgeline: ${err.message}`);
        process.exitCode = 2;
      } else {
        console.error(err);
        process.exitCode = 1;
      }
    },
  );
}
