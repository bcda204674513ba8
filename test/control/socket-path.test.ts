import { expect, test } from 'vitest';
import { DEFAULT_SOCKET_PATH, getSocketPath } from '../../src/control/socket-path.ts';

test('SUPERVISOR_SOCKET wins; unset or empty gives the default', () => {
  expect(getSocketPath({ SUPERVISOR_SOCKET: '/tmp/x.sock' })).toBe('/tmp/x.sock');
  expect(getSocketPath({})).toBe('/run/infer-dev/supervisor.sock');
  expect(getSocketPath({ SUPERVISOR_SOCKET: '' })).toBe(DEFAULT_SOCKET_PATH);
});
