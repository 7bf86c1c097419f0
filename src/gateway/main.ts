/**
 * The gateway as a process of its own (a replica behind a load balancer, or the benchmark's):
 *
 *   node --require tsx/cjs src/gateway/main.ts [--dev]
 *
 * Configuration: FORGELINE_GATEWAY_* (see README, "Gateway"); `--dev` also accepts
 * FORGELINE_GATEWAY_DEV_KEY. Stops on SIGINT/SIGTERM, after in-flight requests end.
 */
import { runMain } from '../cli/run-main';
import { loadConfig } from '../config/load';
import { gatewayOptionsFromConfig } from './options';
import { startGateway } from './server';

runMain(async () => {
  const cfg = loadConfig();
  const gw = await startGateway(gatewayOptionsFromConfig(cfg, { dev: process.argv.includes('--dev') }));
  console.log(`forgeline gateway listening on ${gw.url} (routing table version ${gw.table().version}, ${cfg.gateway.redisUrl ? 'shared state in Redis' : `table in ${cfg.gateway.stateDir}`})`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await gw.close();
});
