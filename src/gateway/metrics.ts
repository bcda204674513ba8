// The gateway's Prometheus metrics: per-instance state and restarts (read from
// the targets when scraped), requests by status, in-flight requests, a request
// duration histogram, upstream errors and the memory held for request bodies. Recording is a few map updates;
// the text is built only when /metrics is asked for.
import type { BodyBudget } from './body-budget.ts';
import type { InstanceRequestStats } from './in-flight.ts';
import type { DeviceMemory } from '../gpu/instance-gpu.ts';
import type { GpuSnapshot } from '../gpu/monitor.ts';
import { INSTANCE_STATES } from '../supervise/instance-machine.ts';
import type { TargetView } from './targets.ts';

/** Upper bounds (seconds) of the duration histogram: from a cached count_tokens to a long generation. */
const DURATION_BUCKETS_S = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]);

/** Why a forward failed, as counted in supervisor_gateway_upstream_errors_total. */
export type UpstreamErrorKind = 'refused' | 'failed' | 'broken';

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Counters and histograms of the gateway's requests. */
export class GatewayMetrics {
  /** `instance \0 code` → count; instance "" for requests no instance was chosen for. */
  readonly #requests = new Map<string, number>();
  readonly #upstreamErrors = new Map<string, number>();
  readonly #durations = new Map<string, Histogram>();

  /** Records one answered request: its instance ("" when none was chosen), status and duration. */
  observeRequest({ instance, status, seconds }: { instance: string; status: number; seconds: number }): void {
    const key = `${instance}\0${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    if (instance === '') return;
    let histogram = this.#durations.get(instance);
    if (!histogram) {
      histogram = { counts: DURATION_BUCKETS_S.map(() => 0), sum: 0, count: 0 };
      this.#durations.set(instance, histogram);
    }
    const bucket = DURATION_BUCKETS_S.findIndex((le) => seconds <= le);
    if (bucket >= 0) histogram.counts[bucket]++;
    histogram.sum += seconds;
    histogram.count++;
  }

  /** Records a failed connection or response of an instance. */
  observeUpstreamError({ instance, kind }: { instance: string; kind: UpstreamErrorKind }): void {
    const key = `${instance}\0${kind}`;
    this.#upstreamErrors.set(key, (this.#upstreamErrors.get(key) ?? 0) + 1);
  }

  /** The Prometheus text exposition (format 0.0.4). */
  render({
    targets,
    stats,
    bodies,
    gpu,
  }: {
    targets: readonly TargetView[];
    stats: (name: string) => InstanceRequestStats;
    bodies: Pick<BodyBudget, 'used' | 'capacity' | 'waiting'>;
    /** The GPUs and what the instances hold there; absent or null: no GPU families. */
    gpu?: GpuMetricsView | null;
  }): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    if (gpu) renderGpu({ gpu, family, out });

    family('supervisor_instance_state', 'gauge', 'Current state of each instance (1 for the current state).');
    for (const t of targets) for (const s of INSTANCE_STATES) out.push(`supervisor_instance_state{${labels({ instance: t.name, state: s })}} ${t.state === s ? 1 : 0}`);

    family('supervisor_instance_restarts_total', 'counter', 'Restarts of each instance after a crash.');
    for (const t of targets) out.push(`supervisor_instance_restarts_total{${labels({ instance: t.name })}} ${t.restarts}`);

    family('supervisor_gateway_requests_in_flight', 'gauge', 'Requests being answered by each instance.');
    for (const t of targets) out.push(`supervisor_gateway_requests_in_flight{${labels({ instance: t.name })}} ${stats(t.name).inflight}`);

    family('supervisor_gateway_requests_held', 'gauge', 'Requests held at the drain gate of each instance (it is restarting).');
    for (const t of targets) out.push(`supervisor_gateway_requests_held{${labels({ instance: t.name })}} ${stats(t.name).held}`);

    family('supervisor_gateway_requests_total', 'counter', 'Requests answered, by instance and HTTP status (instance "" when none was chosen).');
    for (const [key, n] of this.#requests) {
      const [instance, code] = key.split('\0');
      out.push(`supervisor_gateway_requests_total{${labels({ instance, code })}} ${n}`);
    }

    family('supervisor_gateway_upstream_errors_total', 'counter', 'Connections to an instance refused or failed, and responses broken off.');
    for (const [key, n] of this.#upstreamErrors) {
      const [instance, kind] = key.split('\0');
      out.push(`supervisor_gateway_upstream_errors_total{${labels({ instance, kind })}} ${n}`);
    }

    family('supervisor_gateway_request_body_bytes', 'gauge', 'Bytes of request bodies the gateway holds now (body_memory_bytes is the most).');
    out.push(`supervisor_gateway_request_body_bytes ${bodies.used}`);
    family('supervisor_gateway_request_body_bytes_limit', 'gauge', 'body_memory_bytes: the most all request bodies may hold together.');
    out.push(`supervisor_gateway_request_body_bytes_limit ${bodies.capacity}`);
    family('supervisor_gateway_request_bodies_waiting', 'gauge', 'Requests whose body waits for room before it is read.');
    out.push(`supervisor_gateway_request_bodies_waiting ${bodies.waiting}`);

    family('supervisor_gateway_request_duration_seconds', 'histogram', 'Time from request to the end of the response, per instance.');
    for (const [instance, h] of this.#durations) {
      let cumulative = 0;
      DURATION_BUCKETS_S.forEach((le, i) => {
        cumulative += h.counts[i];
        out.push(`supervisor_gateway_request_duration_seconds_bucket{${labels({ instance, le: String(le) })}} ${cumulative}`);
      });
      out.push(`supervisor_gateway_request_duration_seconds_bucket{${labels({ instance, le: '+Inf' })}} ${h.count}`);
      out.push(`supervisor_gateway_request_duration_seconds_sum{${labels({ instance })}} ${h.sum}`);
      out.push(`supervisor_gateway_request_duration_seconds_count{${labels({ instance })}} ${h.count}`);
    }
    return `${out.join('\n')}\n`;
  }
}

// `a="x",b="y"` with Prometheus escaping.
function labels(pairs: Record<string, string>): string {
  return Object.entries(pairs)
    .map(([k, v]) => `${k}="${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')}"`)
    .join(',');
}

/** What /metrics shows of the GPUs: nvidia-smi's last answer, and each instance's memory, context and fit. */
export interface GpuMetricsView {
  snapshot: GpuSnapshot | null;
  instances: ReadonlyArray<{
    name: string;
    memory: readonly DeviceMemory[];
    context: { configured: number | null; trained: number | null; actual: number | null } | null;
    fitReducedCount: number;
  }>;
}

// Per-GPU gauges named as DCGM's exporter names them (labels gpu and UUID), so existing dashboards read them;
// per-instance GPU memory, context and reduced fits under our prefix.
function renderGpu({ gpu, family, out }: { gpu: GpuMetricsView; family: (name: string, type: string, help: string) => void; out: string[] }): void {
  const gpus = gpu.snapshot?.gpus ?? [];
  const perGpu = (name: string, help: string, value: (g: (typeof gpus)[number]) => number | null) => {
    family(name, 'gauge', help);
    for (const g of gpus) {
      const v = value(g);
      if (v !== null) out.push(`${name}{${labels({ gpu: String(g.index), UUID: g.uuid, modelName: g.name })}} ${v}`);
    }
  };
  perGpu('DCGM_FI_DEV_FB_USED', 'Framebuffer memory used (in MiB).', (g) => g.usedMiB);
  perGpu('DCGM_FI_DEV_FB_FREE', 'Framebuffer memory free (in MiB).', (g) => g.freeMiB);
  perGpu('DCGM_FI_DEV_GPU_UTIL', 'GPU utilization (in %).', (g) => g.utilization);
  family('supervisor_instance_gpu_memory_mib', 'gauge', 'GPU memory an instance holds, per GPU, with where the figure comes from (buffers, nvml, delta).');
  for (const i of gpu.instances) {
    for (const m of i.memory) out.push(`supervisor_instance_gpu_memory_mib{${labels({ instance: i.name, gpu: String(m.gpu), source: m.source })}} ${m.mib}`);
  }
  family('supervisor_instance_context_tokens', 'gauge', 'Context size of an instance: configured, trained (the model\'s) and actual (what the server runs with).');
  for (const i of gpu.instances) {
    for (const kind of ['configured', 'trained', 'actual'] as const) {
      const v = i.context?.[kind];
      if (v !== null && v !== undefined) out.push(`supervisor_instance_context_tokens{${labels({ instance: i.name, kind })}} ${v}`);
    }
  }
  family('supervisor_instance_fit_reduced_total', 'counter', "Runs whose fit served less than configured (a shorter context, layers on the CPU).");
  for (const i of gpu.instances) out.push(`supervisor_instance_fit_reduced_total{${labels({ instance: i.name })}} ${i.fitReducedCount}`);
}
