// What a llama-server load told us, read line by line from its log (at
// verbosity 4: config/argv.ts LOG_VERBOSITY_ENV): the phase it reached, what --fit
// projected and decided, how many layers went to the GPU, the buffers it
// allocated per device, and the context it really got. Pure: lines in, report
// out, so it is tested on recorded logs.

/** The steps of a load, in order; each has the share of the load done when it begins. */
const LOAD_PHASES = [
  { phase: 'spawned', percent: 0 },
  { phase: 'fitting', percent: 5 },
  { phase: 'reading', percent: 10 },
  { phase: 'tensors', percent: 20 },
  { phase: 'context', percent: 80 },
  { phase: 'warmup', percent: 90 },
  { phase: 'listening', percent: 100 },
] as const;

export type LoadPhase = (typeof LOAD_PHASES)[number]['phase'];

/** MiB a device holds for one instance, by kind of buffer. */
export interface DeviceBuffers {
  model: number;
  kv: number;
  compute: number;
}

/** What --fit did to make the model fit the memory that was free at start. */
export type FitDecision = 'unchanged' | 'context-reduced' | 'layers-moved' | 'failed';

export interface LoadReport {
  phase: LoadPhase;
  /** --fit's projection (device memory; host memory on a CPU-only build). */
  fit: { projectedMiB: number; freeMiB: number; memory: 'device' | 'host' } | null;
  fitDecision: FitDecision | null;
  /** Set when fit reduced the context: from the model's (or configured) size to the one it chose. */
  contextReduced: { from: number; to: number } | null;
  /** `offloaded 20/33 layers to GPU`. */
  offloaded: { layers: number; of: number } | null;
  /** Device name (`CUDA0`, `CPU`, `CPU_Mapped`) → MiB. */
  buffers: Record<string, DeviceBuffers>;
  /** The context the server runs with, and the one the model was trained for. */
  nCtx: number | null;
  nCtxTrain: number | null;
  /** The server's request slots (`--parallel`, or its own default). */
  slots: number | null;
  /** Lines that moved the report: a load that prints them makes progress. */
  lines: number;
}

/** A report with nothing seen yet. */
export function emptyLoadReport(): LoadReport {
  return { phase: 'spawned', fit: null, fitDecision: null, contextReduced: null, offloaded: null, buffers: {}, nCtx: null, nCtxTrain: null, slots: null, lines: 0 };
}

/** How far along the load is, 0–100, from the phase reached. */
export function loadPercent(report: Pick<LoadReport, 'phase'>): number {
  return LOAD_PHASES.find((p) => p.phase === report.phase)?.percent ?? 0;
}

/** True when llama.cpp served less than was configured: a shorter context, or layers on the CPU. */
export function isFitReduced(report: Pick<LoadReport, 'fitDecision'>): boolean {
  return report.fitDecision === 'context-reduced' || report.fitDecision === 'layers-moved';
}

// Each rule: a pattern searched anywhere in the line (llama.cpp prefixes a timestamp and level), and what it means.
const NUMBER = String.raw`(\d+(?:\.\d+)?)`;
const RULES: ReadonlyArray<{ re: RegExp; apply(r: LoadReport, m: RegExpExecArray): void }> = [
  { re: /common_init_\w*: fitting params to device memory/, apply: (r) => advance(r, 'fitting') },
  {
    re: new RegExp(String.raw`common_params_fit_impl: projected to use ${NUMBER} MiB of (device|host) memory vs\. ${NUMBER} MiB of (?:free|total) (?:device|host) memory`),
    apply: (r, m) => {
      // Device memory wins: the host line also appears on a GPU build (for the CPU part).
      if (r.fit?.memory === 'device' && m[2] === 'host') return;
      r.fit = { projectedMiB: Number(m[1]), freeMiB: Number(m[3]), memory: m[2] as 'device' | 'host' };
    },
  },
  { re: /common_params_fit_impl: .*no changes needed/, apply: (r) => (r.fitDecision ??= 'unchanged') },
  {
    re: /common_params_fit_impl: context size reduced from (\d+) to (\d+)/,
    apply: (r, m) => {
      r.contextReduced = { from: Number(m[1]), to: Number(m[2]) };
      r.fitDecision = 'context-reduced';
    },
  },
  // Fit's later steps put layers (or parts of them) in system memory.
  { re: /common_params_fit_impl: (filling dense(?:-only)? layers|converting dense-only layers)/, apply: (r) => (r.fitDecision = 'layers-moved') },
  // A fit that gave up after cutting the context keeps the cut (llama.cpp runs with it): the decision stays what was done.
  { re: /common_fit_params: (failed to fit|encountered an error)/, apply: (r) => (r.fitDecision = r.contextReduced ? 'context-reduced' : 'failed') },
  { re: /llama_model_loader: loaded meta data/, apply: (r) => advance(r, 'reading') },
  { re: /print_info: n_ctx_train\s*=\s*(\d+)/, apply: (r, m) => (r.nCtxTrain = Number(m[1])) },
  { re: /load_tensors: loading model tensors/, apply: (r) => advance(r, 'tensors') },
  { re: /load_tensors: offloaded (\d+)\/(\d+) layers to GPU/, apply: (r, m) => (r.offloaded = { layers: Number(m[1]), of: Number(m[2]) }) },
  { re: new RegExp(String.raw`load_tensors:\s+(\S+) model buffer size =\s*${NUMBER} MiB`), apply: (r, m) => addBuffer(r, m[1], 'model', Number(m[2])) },
  {
    re: /llama_context: n_ctx\s*=\s*(\d+)/,
    apply: (r, m) => {
      r.nCtx = Number(m[1]);
      advance(r, 'context');
    },
  },
  { re: new RegExp(String.raw`llama_kv_cache:\s+(\S+) KV buffer size =\s*${NUMBER} MiB`), apply: (r, m) => addBuffer(r, m[1], 'kv', Number(m[2])) },
  { re: new RegExp(String.raw`\w+:\s+(\S+) compute buffer size =\s*${NUMBER} MiB`), apply: (r, m) => addBuffer(r, m[1], 'compute', Number(m[2])) },
  { re: /warming up the model/, apply: (r) => advance(r, 'warmup') },
  { re: /load_model: initializing, n_slots = (\d+)/, apply: (r, m) => (r.slots = Number(m[1])) },
  { re: /llama_server: listening on /, apply: (r) => advance(r, 'listening') },
];

/**
 * Every rule's line holds one of these: a line with none is passed over without running the rules, so the
 * lines of a load that are not about it (tensor by tensor at high verbosity) cost a few substring scans.
 */
const KEYWORDS: readonly string[] = ['common_', 'llama_', 'print_info:', 'load_tensors:', 'compute buffer size', 'warming up the model', 'load_model:'];

/** The report after one more log line (a new object when the line says something, else the same one). */
export function readLoadLine(report: LoadReport, line: string): LoadReport {
  if (!KEYWORDS.some((keyword) => line.includes(keyword))) return report;
  for (const rule of RULES) {
    const match = rule.re.exec(line);
    if (match === null) continue;
    const next: LoadReport = { ...report, buffers: { ...report.buffers }, lines: report.lines + 1 };
    rule.apply(next, match);
    return next;
  }
  return report;
}

/** The report of a whole log. */
export function readLoadLog(lines: Iterable<string>): LoadReport {
  let report = emptyLoadReport();
  for (const line of lines) report = readLoadLine(report, line);
  return report;
}

/** MiB the instance holds on one device, all buffers together. */
export function deviceTotalMiB(buffers: DeviceBuffers): number {
  return buffers.model + buffers.kv + buffers.compute;
}

/** The CUDA devices the report names (`CUDA0` → 0), with what each holds; CPU buffers are left out. */
export function gpuBuffers(report: Pick<LoadReport, 'buffers'>): Array<{ device: number; mib: number; buffers: DeviceBuffers }> {
  return Object.entries(report.buffers)
    .flatMap(([name, buffers]) => {
      const m = /^CUDA(\d+)$/.exec(name);
      return m ? [{ device: Number(m[1]), mib: deviceTotalMiB(buffers), buffers }] : [];
    })
    .sort((a, b) => a.device - b.device);
}

function advance(report: LoadReport, phase: LoadPhase): void {
  if (loadPercent({ phase }) > loadPercent(report)) report.phase = phase;
}

function addBuffer(report: LoadReport, device: string, kind: keyof DeviceBuffers, mib: number): void {
  const current = report.buffers[device] ?? { model: 0, kv: 0, compute: 0 };
  report.buffers[device] = { ...current, [kind]: current[kind] + mib };
}
