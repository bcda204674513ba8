// Target (issue 19): with 5 dashboard pages open, 8 instances and one of them
// writing a log line every millisecond, the daemon uses <= 10 MiB more RSS and
// <= 5 % of a core more CPU than with no page open.
//
// Method: the built daemon with its gateway and 8 fake servers (the daemon's
// work is the same for a real server's log; fake ones spare the 2 cores), one
// started with --line-every-ms 1. Windows of W s (20; 8 with --quick), in the
// order none, pages, none: CPU = utime+stime delta of the daemon over the
// window; RSS = VmRSS at the window's end. Reference: the mean of the two
// "none" windows. The pages (dashboard-harness.mjs) each hold /ui/events and
// tail the flooding instance's log (/ui/log): the worst case.
import { CLK_TCK, cpuTicks, fakeInstance, fakeMaster, fmt, freePorts, sleep, startDaemon, statusKiB, table, waitFor } from './lib.mjs';
import { openPages } from './dashboard-harness.mjs';
import { loadAverage } from './gateway-harness.mjs';

export const name = 'dashboard-footprint';

const INSTANCES = 8;
const PAGES = 5;
const LIMITS = { rssMiB: 10, cpuPct: 5 };

export async function run({ quick }) {
  const windowS = quick ? 8 : 20;
  const [gatewayPort, ...ports] = await freePorts(INSTANCES + 1);
  const config = `${fakeMaster()}
[instance.control]
log_dir = "@DIR@"
${ports.map((p, i) => fakeInstance(`i${i}`, p, ['--ready-after-ms', '0', ...(i === 0 ? ['--line-every-ms', '1'] : [])])).join('\n')}
[gateway]
host = "127.0.0.1"
port = ${gatewayPort}
`;
  const daemon = await startDaemon(config);
  try {
    await Promise.all(ports.map((_, i) => daemon.waitTransition(`i${i}`, 'ready', 60_000)));
    await sleep(2000);
    const pid = daemon.pid;
    const measure = async (label, pages) => {
      const open = pages > 0 ? openPages(gatewayPort, pages, { logOf: 'i0' }) : null;
      if (open) await waitFor(() => open.bytes() > 0, 5000, 'the pages to get data');
      await sleep(1000);
      const t0 = cpuTicks(pid);
      const started = Date.now();
      await sleep(windowS * 1000);
      const ticks = cpuTicks(pid) - t0;
      const seconds = (Date.now() - started) / 1000;
      const row = { label, pages, cpuPct: (100 * ticks) / CLK_TCK / seconds, rssMiB: statusKiB(pid, 'VmRSS') / 1024, streamedKiB: open ? open.bytes() / 1024 : 0 };
      open?.close();
      await sleep(500);
      return row;
    };
    const rows = [await measure('none open', 0), await measure(`${PAGES} pages open`, PAGES), await measure('none open (again)', 0)];
    const none = { cpuPct: (rows[0].cpuPct + rows[2].cpuPct) / 2, rssMiB: (rows[0].rssMiB + rows[2].rssMiB) / 2 };
    const addedCpu = rows[1].cpuPct - none.cpuPct;
    const addedRss = rows[1].rssMiB - none.rssMiB;
    const md = table(
      ['window', 'daemon CPU (% of a core)', 'daemon RSS (MiB)', 'sent to pages (KiB)'],
      rows.map((r) => [r.label, fmt(r.cpuPct, 2), fmt(r.rssMiB, 1), fmt(r.streamedKiB, 0)]),
    );
    return {
      markdown: `### dashboard-footprint\n\n${INSTANCES} fake servers, i0 logging a line every ms; ${windowS} s windows; pages hold /ui/events and tail i0's log; load average ${fmt(loadAverage(), 2)}\n\n${md}\n\nadded by ${PAGES} pages: CPU ${fmt(addedCpu, 2)} % of a core, RSS ${fmt(addedRss, 1)} MiB`,
      summary: [
        { benchmark: `dashboard: daemon CPU added by ${PAGES} pages (log line/ms)`, measured: `${fmt(addedCpu, 2)} %`, reference: `none open ${fmt(none.cpuPct, 2)} %`, ratioOrLimit: `limit ${LIMITS.cpuPct} %`, target: `<= ${LIMITS.cpuPct} %`, pass: addedCpu <= LIMITS.cpuPct },
        { benchmark: `dashboard: daemon RSS added by ${PAGES} pages`, measured: `${fmt(addedRss, 1)} MiB`, reference: `none open ${fmt(none.rssMiB, 1)} MiB`, ratioOrLimit: `limit ${LIMITS.rssMiB} MiB`, target: `<= ${LIMITS.rssMiB} MiB`, pass: addedRss <= LIMITS.rssMiB },
      ],
      data: { rows, addedCpu, addedRss, windowS },
    };
  } finally {
    await daemon.stop();
  }
}
