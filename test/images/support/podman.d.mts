// Types of test/images/support/podman.mjs.
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}
export interface StatusRow {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
}
export const ROOT: string;
export const STAGE1: string;
export const STAGE2: string;
export const TINY_MODEL_IN_CONTAINER: string;
export function getPodmanEnv(): NodeJS.ProcessEnv;
export function run(file: string, args: readonly string[], options?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Run;
export function podman(args: readonly string[], options?: { timeoutMs?: number }): string;
export function removeContainer(name: string): void;
export function buildImages(): { base: string; baseMs: number; buildMs: number };
export function makeBundle(binDir: string, dir: string): string;
export function writeServingConfig(file: string): string;
export function writeHook(file: string, log: string): string;
export function startServing(options: {
  name: string;
  ports: { ssh: number; llama: number; gateway: number };
  bundle: string;
  config: string;
  modelDir: string;
  publicKey: string;
  extra?: readonly string[];
}): number;
export function containerStatus(container: string): StatusRow[] | null;
export function tail(text: string, lines?: number): string;
