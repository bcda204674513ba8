// A real Supervisor (real processes, real logs) from a TOML text, with the
// gateway started in-process on top of it through the fromSupervisor adapter.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import { which } from '../../src/config/load-config.ts';
import { readToml } from '../../src/config/toml-source.ts';
import { makeGatewayPlan, type GatewayPlan } from '../../src/config/gateway-plan.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { fromSupervisor } from '../../src/gateway/targets.ts';
import { makeInstanceDeps } from '../../src/supervise/effects.ts';
import type { InstanceState } from '../../src/supervise/instance.ts';
import { Supervisor } from '../../src/supervise/supervisor.ts';
import { quietLog } from './support.ts';
import type { Log } from '../../src/logging/log.ts';

export interface Supervised {
  dir: string;
  supervisor: Supervisor;
  gateway: Gateway;
  gatewayPlan: GatewayPlan;
  port: number;
  url: string;
  /** Transition and other log events of the supervisor. */
  events: { level: string; obj: Record<string, unknown>; msg: string }[];
  waitState(name: string, state: InstanceState, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts the instances of `instancesToml` (`@DIR@` = a temp dir) and a gateway from `gatewayToml` on a free loopback port. */
export async function startSupervised({ instancesToml, gatewayToml = '', env = {} }: { instancesToml: string; gatewayToml?: string; env?: Record<string, string> }): Promise<Supervised> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  const planned = makeLaunchPlan(instancesToml.replaceAll('@DIR@', dir), { env: {}, file: null, isFile: () => false, which: (n) => which(n, process.env.PATH) });
  if (!planned.plan) throw new Error(planned.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  const launchPlan = planned.plan;
  const made = makeGatewayPlan(readToml(gatewayToml).document.gateway, launchPlan, env);
  if (!made.plan) throw new Error(made.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n'));
  const gatewayPlan: GatewayPlan = { ...made.plan, host: '127.0.0.1', port: 0 };
  const events: Supervised['events'] = [];
  const keep = (level: string) => (obj: object, msg: string) => void events.push({ level, obj: obj as Record<string, unknown>, msg });
  const log: Log = { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
  const supervisor = new Supervisor({ plan: launchPlan, deps: makeInstanceDeps({ log }) });
  const gateway = await startGateway({ plan: gatewayPlan, targets: fromSupervisor(supervisor), log: quietLog() });
  void supervisor.startAll();
  const port = gateway.address!.port;
  return {
    dir,
    supervisor,
    gateway,
    gatewayPlan,
    port,
    url: `http://127.0.0.1:${port}`,
    events,
    async waitState(name, state, timeoutMs = 30_000) {
      const instance = supervisor.instance(name);
      if (!instance) throw new Error(`no instance ${name}`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        instance.waitFor([state]),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${name} not ${state} after ${timeoutMs} ms (now ${instance.state}; last exit ${JSON.stringify(instance.status().last_exit)})`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    },
    async close() {
      await gateway.close();
      await supervisor.shutdown('test over');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
