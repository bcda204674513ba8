// llama.cpp router mode's `GET /models/sse`, fed by the dashboard's state: a
// `model_status` for every model on connect, then one for each model whose
// status or load progress changed. Our parsed load phases become the router's
// `progress`, so llama.cpp's own web UI shows our instances loading (which a
// standalone llama-server cannot tell it). Envelope as the router's:
//   data: {"event":"model_status","model":"a","data":{"status":"loading","progress":{...}}}
import type { IncomingMessage, ServerResponse } from 'node:http';
import { routerStatus } from '../gateway/router-models.ts';
import type { TargetView } from '../gateway/targets.ts';
import type { Dashboard, DashboardSnapshot, DashboardUpdate } from './dashboard.ts';

/** The router's stages; ours are one: the model's weights and context. */
const STAGES = ['text_model'];

/** One row's `model_status` payload. */
export function makeModelStatus(row: Record<string, any>): { status: string; progress?: object; failed?: true; exit_code?: number } {
  const status = routerStatus(row.state as TargetView['state']);
  if (row.state === 'fatal') return { status, failed: true, exit_code: row.last_exit?.code ?? 1 };
  if (status === 'loading') {
    const value = row.load ? Math.max(0, Math.min(1, Number(row.load.percent) / 100)) : 0;
    return { status, progress: { stages: STAGES, current: STAGES[0], value } };
  }
  return { status };
}

export function streamModelEvents(req: IncomingMessage, res: ServerResponse, { dashboard, routed }: { dashboard: Dashboard; routed: (name: string) => boolean }): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  // What each model last said, so only a change is sent.
  const sent = new Map<string, string>();
  const send = (rows: Array<Record<string, any>>) => {
    let text = '';
    for (const row of rows) {
      if (!routed(row.name)) continue;
      const data = JSON.stringify(makeModelStatus(row));
      if (sent.get(row.name) === data) continue;
      sent.set(row.name, data);
      text += `data: {"event":"model_status","model":${JSON.stringify(row.name)},"data":${data}}\n\n`;
    }
    if (text !== '' && !res.writableEnded) res.write(text);
  };
  const unsubscribe = dashboard.subscribe({
    send: (event, data) => {
      if (event === 'snapshot') return send((data as DashboardSnapshot).instances);
      const update = data as DashboardUpdate;
      if (update.instances) send(update.instances);
      for (const name of update.removed ?? []) {
        if (!sent.delete(name) || res.writableEnded) continue;
        res.write(`data: {"event":"model_remove","model":${JSON.stringify(name)}}\n\n`);
      }
    },
  });
  const keepalive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  keepalive.unref();
  const close = () => {
    clearInterval(keepalive);
    unsubscribe();
  };
  res.once('close', close);
  req.once('close', close);
}
