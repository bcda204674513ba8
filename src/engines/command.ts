// Any other server that speaks HTTP (TGI, Ollama, a user's script):
// `[instance.x] engine = "command"` with `command = [...]`, `port` and
// optionally `host`, `health_path` and `aliases`. The argv is the command as
// written (no shell); readiness is GET health_path answering 200. Only a
// port taken by someone else is known to fail the same way again.
import type { ConfigTable } from '../config/overrides.ts';
import { PORT_TAKEN, type EngineFacts, type EngineLaunch } from './engine.ts';

/** The instance-level keys of a command instance (validated by config/schema.ts). */
export const COMMAND_KEYS = ['engine', 'command', 'host', 'port', 'health_path', 'aliases'] as const;

export const command: EngineFacts = {
  name: 'command',
  readsLoadLog: false,
  configFailures: [...PORT_TAKEN],
};

/** The launch of a command instance, from its validated `[instance.x]` table. */
export function makeCommandLaunch(instance: ConfigTable): EngineLaunch {
  const argv = (instance.command as string[]).map(String);
  return {
    executable: argv[0],
    args: argv.slice(1),
    env: {},
    envNotes: {},
    host: (instance.host as string | undefined) ?? '127.0.0.1',
    port: Number(instance.port),
    model: null,
    aliases: ((instance.aliases as string[] | undefined) ?? []).map(String),
    healthPath: (instance.health_path as string | undefined) ?? null,
    logPrefix: 'command-',
    warnings: [],
  };
}
