// The status table: one aligned row per instance, and below it why an
// instance is waiting or being stopped, which the columns cannot say.
import { describe, expect, it } from 'vitest';
import { formatStatusTable, type StatusRow } from '../../src/cli/format-status.ts';

const row = (over: Partial<StatusRow>): StatusRow => ({
  name: 'a',
  engine: 'llama-server',
  state: 'ready',
  state_since: '2026-12-02T10:00:00.000Z',
  state_reason: 'health check /health answered 200',
  pid: 10,
  uptime_s: 65,
  restarts: 0,
  last_exit: null,
  port: 8080,
  gpu_ids: null,
  log_file: '/tmp/a.log',
  next_restart_at: null,
  load: null,
  context: null,
  fit: null,
  gpu: null,
  ...over,
});

describe('formatStatusTable', () => {
  it('aligns the columns and says why an instance waits', () => {
    const text = formatStatusTable([
      row({}),
      row({ name: 'bb', state: 'waiting', pid: null, uptime_s: null, state_reason: 'port 8081 is still held by our previous process, pid 9 (llama-server)' }),
    ]);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+PID\s+UPTIME/);
    // Each cell starts where its header does.
    const at = (header: string) => lines[0].indexOf(header);
    expect(lines[1].slice(at('STATE'), at('PID')).trim()).toBe('ready');
    expect(lines[1].slice(at('UPTIME'), at('RESTARTS')).trim()).toBe('1m5s');
    expect(lines[2].slice(at('STATE'), at('PID')).trim()).toBe('waiting');
    expect(lines[2].slice(at('PID'), at('UPTIME')).trim()).toBe('-');
    expect(lines[3]).toBe('bb waiting: port 8081 is still held by our previous process, pid 9 (llama-server)');
    expect(lines).toHaveLength(5);
  });
});

describe('engines', () => {
  it('names the engine beside instances that are not llama-server', () => {
    const text = formatStatusTable([row({ name: 'qwen', engine: 'vllm' }), row({ name: 'b' })]);
    expect(text).toContain('qwen (vllm)');
    expect(text).not.toContain('(llama-server)');
  });
});

