import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSshdPort } from '../../src/boot/sshd-config.ts';
import { makeTempRoot, removeTempRoot } from './boot-fixtures.ts';

let root: string;
beforeEach(async () => {
  root = await makeTempRoot('sshd-config');
});
afterEach(async () => {
  await removeTempRoot(root);
});

describe('readSshdPort', () => {
  it.each([
    ['', 22],
    ['# Port 2200\nPermitRootLogin no\n', 22],
    ['Port 2222\nPort 2223\n', 2222],
    ['  port=2201\n', 2201],
    ['Port banana\nPort 2202\n', 2202],
    ['Match User bob\n  Port 2203\n', 22],
  ])('%j → %d', async (text, port) => {
    await writeFile(join(root, 'sshd_config'), text);
    expect(await readSshdPort(join(root, 'sshd_config'))).toBe(port);
  });

  it('follows Include globs relative to the config dir, in name order, as Debian ships it', async () => {
    await mkdir(join(root, 'sshd_config.d'));
    await writeFile(join(root, 'sshd_config.d', '20-port.conf'), 'Port 2020\n');
    await writeFile(join(root, 'sshd_config.d', '10-other.conf'), 'X11Forwarding yes\n');
    await writeFile(join(root, 'sshd_config.d', '05-port.txt'), 'Port 505\n');
    await writeFile(join(root, 'sshd_config'), 'Include sshd_config.d/*.conf\nPort 22\n');
    expect(await readSshdPort(join(root, 'sshd_config'))).toBe(2020);
    await writeFile(join(root, 'sshd_config'), 'Include /nonexistent/*.conf\nPort 2424\n');
    expect(await readSshdPort(join(root, 'sshd_config'))).toBe(2424);
  });
});
