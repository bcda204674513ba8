// The dashboard in a real browser: Debian's Chromium driven by playwright-core
// (no browser download), against the built daemon supervising real
// llama-server instances. nvidia-smi is the recorded H200's answers, with the
// compute processes written as our instances' pids, so the GPU bars show
// recorded figures. Screenshots go to test/artifacts/ (gitignored).
import { appendFileSync, chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { REPO_ROOT, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePorts, llamaServerPath } from '../support/llama-server.ts';
import { requireTools } from '../support/system-tools.ts';

const ARTIFACTS = join(REPO_ROOT, 'test/artifacts');
const RECORDED_SMI = join(REPO_ROOT, 'test/fixtures/gpu/recorded-nvidia-smi.sh');
const H200 = 'GPU-315cd002-e974-3bdd-c635-f8e7f15b6430';

let modelDir: string;
let bin: string;
let apps: string;
let daemon: DaemonHandle;
let browser: Browser;
let page: Page;
let gatewayPort: number;

function config(model: string, ports: number[]): string {
  return `
[master]
llama_cpp_path = ${JSON.stringify(llamaServerPath())}

[instance.control]
log_dir = "@DIR@"
backoff_initial_ms = 200
stop_timeout_s = 5

[instance.server]
host = "127.0.0.1"
model = ${JSON.stringify(model)}
threads = 1

[instance.a.server]
port = ${ports[0]}
ctx_size = 2048

[instance.b.server]
port = ${ports[1]}
ctx_size = 1024

[instance.broken.server]
port = ${ports[2]}
extra_args = ["--no-such-flag"]

[gateway]
host = "127.0.0.1"
port = ${ports[3]}
`;
}

const row = (name: string) => page.locator(`tr[data-instance="${name}"]`);
const stateOf = (name: string) => row(name).getAttribute('data-state');

beforeAll(async () => {
  const { chromium: executablePath } = requireTools(['chromium'], 'the dashboard tests');
  modelDir = mkdtempSync(join(tmpdir(), 'tiny-'));
  const model = join(modelDir, 'tiny.gguf');
  await writeTinyModel(model);
  bin = mkdtempSync(join(tmpdir(), 'smi-'));
  copyFileSync(RECORDED_SMI, join(bin, 'nvidia-smi'));
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  apps = join(bin, 'apps.csv');
  writeFileSync(apps, '');
  const ports = await freePorts(4);
  gatewayPort = ports[3];
  daemon = await startDaemon(config(model, ports), {
    PATH: `${bin}:${process.env.PATH}`,
    FAKE_SMI_APPS: apps,
    FAKE_SMI_GPUS: join(REPO_ROOT, 'test/fixtures/gpu/nvidia-smi-two.csv'),
    FAKE_SMI_LIST: join(REPO_ROOT, 'test/fixtures/gpu/nvidia-smi-L.txt'),
  });
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  // Every state a row shows, with when: the page's own record, so nothing between two looks is missed.
  await page.addInitScript(() => {
    const seen: Array<{ name: string; state: string; at: number }> = [];
    (window as any).__states = seen;
    new MutationObserver((records) => {
      for (const r of records) {
        const tr = r.target as HTMLElement;
        if (tr.dataset?.instance) seen.push({ name: tr.dataset.instance, state: tr.dataset.state ?? '', at: Date.now() });
      }
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  });
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(`http://127.0.0.1:${gatewayPort}/ui`);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  rmSync(modelDir, { recursive: true, force: true });
  rmSync(bin, { recursive: true, force: true });
});

describe('the dashboard in Chromium, with real llama-server instances', () => {
  it('shows both instances ready, live, with their pids and contexts', async () => {
    await page.waitForSelector('tr[data-instance="a"][data-state="ready"]', { timeout: 60_000 });
    await page.waitForSelector('tr[data-instance="b"][data-state="ready"]', { timeout: 60_000 });
    const [a, b] = [daemon.status().find((r) => r.name === 'a')!, daemon.status().find((r) => r.name === 'b')!];
    expect(await row('a').locator('[data-field="pid"]').textContent()).toBe(String(a.pid));
    expect(await row('b').locator('[data-field="pid"]').textContent()).toBe(String(b.pid));
    expect(await row('a').locator('[data-field="context"]').textContent()).toContain('2048');
    expect(await page.locator('#conn').getAttribute('data-conn')).toBe('live');
  });

  it('shows the crash line of an instance started with a bad flag', async () => {
    await page.waitForSelector('tr[data-instance="broken"][data-state="fatal"]', { timeout: 30_000 });
    expect(await row('broken').locator('[data-field="last-exit"]').textContent()).toMatch(/no-such-flag/);
  });

  it('tails a log: a line written shows within 1 s', async () => {
    await page.selectOption('#log-name', 'a');
    const file = daemon.status().find((r) => r.name === 'a')!.log_file as string;
    await page.waitForFunction((f) => document.getElementById('log-file')?.textContent === f, file);
    // Let the tail reach the file's end first: the line must come from following, not from history.
    await page.waitForTimeout(500);
    const marker = `dashboard tail marker ${Date.now()}`;
    const written = Date.now();
    appendFileSync(file, `${marker}\n`);
    await page.waitForFunction((m) => document.getElementById('log-lines')?.textContent?.includes(m), marker, { timeout: 5000 });
    expect(Date.now() - written).toBeLessThanOrEqual(1000);
  });

  it('kill -9 → the page shows it restarting, then ready again within 3 s, without a reload', async () => {
    const before = daemon.status().find((r) => r.name === 'a')!;
    await page.evaluate(() => ((window as any).__states.length = 0));
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    const killed = Date.now();
    process.kill(before.pid, 'SIGKILL');
    await page.waitForFunction(
      (pid) => {
        const tr = document.querySelector<HTMLElement>('tr[data-instance="a"]');
        return tr?.dataset.state === 'ready' && tr.querySelector('[data-field="pid"]')?.textContent !== String(pid);
      },
      before.pid,
      { timeout: 10_000 },
    );
    const readyAt = Date.now();
    const seen: Array<{ name: string; state: string }> = await page.evaluate(() => (window as any).__states);
    const states = seen.filter((s) => s.name === 'a').map((s) => s.state);
    expect(states.some((s) => s !== 'ready')).toBe(true);
    expect(states.at(-1)).toBe('ready');
    expect(readyAt - killed).toBeLessThanOrEqual(3000);
    expect(navigations).toEqual([]);
    expect(await row('a').locator('[data-field="restarts"]').textContent()).toBe('1');
  });

  it('main view screenshot with the recorded H200 figures (test/artifacts/dashboard-main.png)', async () => {
    // The recorded nvidia-smi had two servers on the H200 holding 87982 and 54140 MiB: say those are a and b.
    const [a, b] = ['a', 'b'].map((n) => daemon.status().find((r) => r.name === n)!);
    writeFileSync(apps, `${a.pid}, ${H200}, 87982\n${b.pid}, ${H200}, 54140\n`);
    await page.waitForFunction(() => document.querySelector('[data-gpu="0"]')?.textContent?.includes('87982'), undefined, { timeout: 15_000 });
    const gpu = await page.locator('[data-gpu="0"]').textContent();
    expect(gpu).toContain('NVIDIA H200');
    expect(gpu).toContain('other 17 MiB');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-main.png'), fullPage: true });
    // The driver "lets go" of them again, so the stop below is not held by the GPU release barrier.
    writeFileSync(apps, '');
  });

  it('stop from the page button stops the instance, and supervisor status agrees', async () => {
    await row('b').locator('button[data-action="stop"]').click();
    await page.waitForSelector('tr[data-instance="b"][data-state="stopped"]', { timeout: 20_000 });
    await page.waitForFunction(() => /stop b: b stopped/.test(document.getElementById('answer')?.textContent ?? ''), undefined, { timeout: 5000 });
    expect(daemon.status().find((r) => r.name === 'b')!.state).toBe('stopped');
    const r = daemon.cli('status');
    expect(r.stdout).toMatch(/^b\s+stopped/m);
  });
});
