// Engine name → its facts; the one lookup supervision uses (exit classification, log reading).
import { command } from './command.ts';
import { PORT_TAKEN, type EngineFacts, type EngineName } from './engine.ts';
import { llamaServer } from './llama-server.ts';
import { rpcWorker } from './rpc-worker.ts';
import { sglang } from './sglang.ts';
import { vllm } from './vllm.ts';

/** sshd and the like: only a taken port is known to repeat. */
const service: EngineFacts = { name: 'service', readsLoadLog: false, configFailures: [...PORT_TAKEN] };

const ENGINES: Readonly<Record<EngineName, EngineFacts>> = { 'llama-server': llamaServer, vllm, sglang, command, 'rpc-worker': rpcWorker, service };

/** The facts of an engine; a plan without one is llama-server's. */
export function engineFacts(name: EngineName | undefined): EngineFacts {
  return ENGINES[name ?? 'llama-server'];
}
