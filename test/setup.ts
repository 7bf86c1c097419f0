/**
 * Mocha root hooks, loaded for every run (see .mocharc.json). Shared resources (the Temporal
 * test servers, the workflow bundle, an S3 server) are started lazily by the first test that asks
 * for them (test/helpers/*) and registered here for teardown, so running one file starts only
 * what that file needs.
 */
const teardowns: Array<{ name: string; fn: () => Promise<void> }> = [];

export function registerTeardown(name: string, fn: () => Promise<void>): void {
  teardowns.push({ name, fn });
}

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    for (const { name, fn } of teardowns.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`teardown of ${name} failed:`, err);
      }
    }
  },
};
