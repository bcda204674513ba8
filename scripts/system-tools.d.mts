// Types of scripts/system-tools.mjs, for the tests that ask it which tools are there.
export interface SystemTool {
  command: string;
  package: string;
  for: readonly ('demo' | 'test')[];
}
export const SYSTEM_TOOLS: readonly SystemTool[];
export function searchPath(env?: NodeJS.ProcessEnv): string[];
export function findCommand(command: string, dirs: readonly string[]): string | null;
export function findMissing(purpose: 'demo' | 'test', dirs: readonly string[]): SystemTool[];
export function describeMissing(purpose: 'demo' | 'test', missing: readonly SystemTool[]): string;
