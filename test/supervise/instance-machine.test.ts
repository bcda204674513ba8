// The instance rulebook as a pure reducer, cell by cell: every state (and the
// launching variants of the states a start passes through) against every
// event, the impossible cells included. A cell is the state after the event;
// '!' marks cells where the event must change nothing at all.
import { describe, expect, it } from 'vitest';
import {
  INSTANCE_STATES,
  initialMachine,
  reduce,
  TRANSITIONS,
  type InstanceEffect,
  type InstanceEvent,
  type InstanceState,
  type Machine,
} from '../../src/supervise/instance-machine.ts';
import { makePlan } from '../support/fake-instance-deps.ts';

const NOW = 1_700_000_000_000;
const plan = makePlan({ name: 'llm', port: 8080 });

const base = initialMachine();
const running = { pid: 100, generation: 1, startedAt: NOW - 5000, lastProgressAt: NOW, readySince: null };
const terminating = { ...running, termAt: NOW - 1000, killDeadline: NOW + 7000, stopReason: 'x', startReason: 'y' };
const launching = (stage: 'preflight' | 'spawn') => ({ generation: 2, launch: { generation: 2, reason: 'start', stage, stopAfterSpawn: null } });

/** One machine per row. */
const ROWS: Record<string, Machine> = {
  stopped: { ...base },
  'stopped (preflight)': { ...base, ...launching('preflight') },
  'stopped (spawning)': { ...base, ...launching('spawn') },
  waiting: { ...base, state: 'waiting', waitSince: NOW - 1000, generation: 2 },
  starting: { ...base, state: 'starting', ...running },
  ready: { ...base, state: 'ready', ...running, readySince: NOW - 1000 },
  stopping: { ...base, state: 'stopping', ...terminating },
  restarting: { ...base, state: 'restarting', ...terminating },
  'restarting (preflight)': { ...base, state: 'restarting', ...launching('preflight') },
  failing: { ...base, state: 'failing', ...terminating },
  backoff: { ...base, state: 'backoff', nextRestartAt: NOW + 500, generation: 1, restartsAt: [NOW - 100] },
  fatal: { ...base, state: 'fatal', generation: 1, lastExit: { code: 1, signal: null, reason: 'boom' } },
  idle: { ...base, state: 'idle', generation: 1 },
  unloading: { ...base, state: 'unloading', ...terminating },
};

const COLUMNS = ['start', 'stop', 'restart', 'pre-ok', 'pre-wait', 'pre-fail', 'spawned', 'spawn-failed', 'probe-ok', 'probe-bad', 'exited', 't-backoff', 't-retry', 't-kill', 'fit-reduced', 'park', 'unload'] as const;
type Column = (typeof COLUMNS)[number];

function eventFor(column: Column, m: Machine): InstanceEvent {
  const generation = m.generation;
  switch (column) {
    case 'start':
      return { type: 'start', reason: 'start' };
    case 'stop':
      return { type: 'stop', reason: 'stop' };
    case 'restart':
      return { type: 'restart', reason: 'restart' };
    case 'pre-ok':
      return { type: 'preflight-done', generation, outcome: { kind: 'ok' } };
    case 'pre-wait':
      return { type: 'preflight-done', generation, outcome: { kind: 'wait', reason: 'port held', limitMs: 10_000, giveUp: 'port taken' } };
    case 'pre-fail':
      return { type: 'preflight-done', generation, outcome: { kind: 'fail', reason: 'model file not found' } };
    case 'spawned':
      return { type: 'spawned', generation, pid: 200 };
    case 'spawn-failed':
      return { type: 'spawn-failed', generation, reason: 'cannot run' };
    case 'probe-ok':
      return { type: 'probed', generation, ok: true, answer: '200 ok', logWriteAt: null };
    case 'probe-bad':
      return { type: 'probed', generation, ok: false, answer: '503 loading', logWriteAt: null };
    case 'exited':
      return { type: 'exited', generation, status: { code: 1, signal: null }, tail: [], at: NOW };
    case 't-backoff':
      return { type: 'timer', timer: 'backoff' };
    case 't-retry':
      return { type: 'timer', timer: 'retry' };
    case 't-kill':
      return { type: 'timer', timer: 'kill' };
    case 'fit-reduced':
      return { type: 'fit-reduced', generation, reason: 'ctx 71936/131072' };
    case 'park':
      return { type: 'park', reason: 'on demand' };
    case 'unload':
      return { type: 'unload', reason: 'idle for 600 s' };
  }
}

// prettier-ignore
const EXPECTED: Record<string, readonly string[]> = {
  //                        start         stop        restart        pre-ok        pre-wait   pre-fail  spawned     spawn-failed  probe-ok   probe-bad   exited        t-backoff   t-retry     t-kill      fit-reduced park      unload
  stopped:                  ['stopped',    'stopped',  'stopped',     'stopped!',   'stopped!', 'stopped!', 'stopped!', 'stopped!',  'stopped!', 'stopped!', 'stopped!',   'stopped!', 'stopped!', 'stopped!', 'stopped!', 'idle', 'stopped!'],
  'stopped (preflight)':    ['stopped!',   'stopped',  'stopped!',    'stopped',    'waiting',  'fatal',    'stopped!', 'stopped!',  'stopped!', 'stopped!', 'stopped!',   'stopped!', 'stopped!', 'stopped!', 'stopped!', 'stopped!', 'idle'],
  'stopped (spawning)':     ['stopped!',   'stopped',  'stopped!',    'stopped!',   'stopped!', 'stopped!', 'starting', 'fatal',     'stopped!', 'stopped!', 'stopped!',   'stopped!', 'stopped!', 'stopped!', 'stopped!', 'stopped!', 'stopped'],
  waiting:                  ['waiting',    'stopped',  'waiting',     'waiting!',   'waiting!', 'waiting!', 'waiting!', 'waiting!',  'waiting!', 'waiting!', 'waiting!',   'waiting!', 'waiting',  'waiting!', 'waiting!', 'waiting!', 'idle'],
  starting:                 ['starting!',  'stopping', 'restarting',  'starting!',  'starting!','starting!','starting!','starting!', 'ready',    'starting', 'backoff',    'starting!','starting!','starting!', 'starting', 'starting!', 'unloading'],
  ready:                    ['ready!',     'stopping', 'restarting',  'ready!',     'ready!',   'ready!',   'ready!',   'ready!',    'ready',    'ready',    'backoff',    'ready!',   'ready!',   'ready!', 'ready', 'ready!', 'unloading'],
  stopping:                 ['restarting', 'stopping!','restarting',  'stopping!',  'stopping!','stopping!','stopping!','stopping!', 'stopping!','stopping!','stopped',    'stopping!','stopping!','stopping', 'stopping!', 'stopping!', 'stopping!'],
  restarting:               ['restarting!','stopping', 'restarting!', 'restarting!','restarting!','restarting!','restarting!','restarting!','restarting!','restarting!','restarting','restarting!','restarting!','restarting', 'restarting!', 'restarting!', 'unloading'],
  'restarting (preflight)': ['restarting!','stopped',  'restarting!', 'restarting', 'waiting',  'fatal',    'restarting!','restarting!','restarting!','restarting!','restarting!','restarting!','restarting!','restarting!', 'restarting!', 'restarting!', 'idle'],
  failing:                  ['restarting', 'stopping', 'restarting',  'failing!',   'failing!', 'failing!', 'failing!', 'failing!',  'failing!', 'failing!', 'backoff',    'failing!', 'failing!', 'failing', 'failing!', 'failing!', 'unloading'],
  backoff:                  ['backoff',    'stopped',  'backoff',     'backoff!',   'backoff!', 'backoff!', 'backoff!', 'backoff!',  'backoff!', 'backoff!', 'backoff!',   'backoff',  'backoff!', 'backoff!', 'backoff!', 'backoff!', 'idle'],
  fatal:                    ['fatal',      'stopped',  'fatal',       'fatal!',     'fatal!',   'fatal!',   'fatal!',   'fatal!',    'fatal!',   'fatal!',   'fatal!',     'fatal!',   'fatal!',   'fatal!', 'fatal!', 'fatal!', 'idle'],
  idle:                     ['idle',       'stopped',  'idle',        'idle!',      'idle!',    'idle!',    'idle!',    'idle!',     'idle!',    'idle!',    'idle!',      'idle!',    'idle!',    'idle!',    'idle!', 'idle!', 'idle!'],
  unloading:                ['restarting', 'stopping', 'restarting',  'unloading!', 'unloading!','unloading!','unloading!','unloading!','unloading!','unloading!','idle',    'unloading!','unloading!','unloading', 'unloading!', 'unloading!', 'unloading!'],
};

function transitions(effects: readonly InstanceEffect[]) {
  return effects.filter((e): e is Extract<InstanceEffect, { type: 'transition' }> => e.type === 'transition');
}

describe('the reducer, cell by cell', () => {
  it('has a row for every state', () => {
    const covered = new Set(Object.values(ROWS).map((m) => m.state));
    expect([...covered].sort()).toEqual([...INSTANCE_STATES].sort());
  });

  for (const [row, machine] of Object.entries(ROWS)) {
    describe(row, () => {
      COLUMNS.forEach((column, i) => {
        const cell = EXPECTED[row][i];
        it(`${column} → ${cell}`, () => {
          const { machine: next, effects } = reduce(machine, eventFor(column, machine), { now: NOW, plan });
          const unchanged = cell.endsWith('!');
          expect(next.state).toBe(unchanged ? cell.slice(0, -1) : cell);
          if (unchanged) {
            expect(effects).toEqual([]);
            expect(next).toEqual(machine);
          }
          // Every move is allowed by the table and moves somewhere else.
          let from = machine.state;
          for (const t of transitions(effects)) {
            expect(t.from).toBe(from);
            expect(t.to).not.toBe(t.from);
            expect(TRANSITIONS[t.from]).toContain(t.to);
            from = t.to;
          }
          expect(from).toBe(next.state);
          // The input is never mutated.
          expect(machine).toEqual(ROWS[row]);
        });
      });
    });
  }

  it('ignores every event of an older generation', () => {
    for (const [row, machine] of Object.entries(ROWS)) {
      for (const column of ['pre-ok', 'pre-wait', 'pre-fail', 'spawned', 'spawn-failed', 'probe-ok', 'probe-bad', 'exited', 'fit-reduced'] as const) {
        const event = { ...eventFor(column, machine), generation: machine.generation - 1 } as InstanceEvent;
        const { machine: next, effects } = reduce(machine, event, { now: NOW, plan });
        expect({ row, column, effects, same: next === machine || JSON.stringify(next) === JSON.stringify(machine) }).toEqual({ row, column, effects: [], same: true });
      }
    }
  });
});

describe('what the cells do', () => {
  const run = (m: Machine, event: InstanceEvent, policy = {}) => reduce(m, event, { now: NOW, plan: { ...plan, policy: { ...plan.policy, ...policy } } });
  const types = (effects: readonly InstanceEffect[]) => effects.map((e) => (e.type === 'transition' ? `${e.from}->${e.to}` : e.type));

  it('start from stopped asks for the preflight first; the spawn only after it', () => {
    const started = run(ROWS.stopped, { type: 'start', reason: 'go' });
    expect(types(started.effects)).toEqual(['cancel-timer', 'cancel-timer', 'preflight']);
    expect(started.machine.launch).toEqual({ generation: 1, reason: 'go', stage: 'preflight', stopAfterSpawn: null });
    const checked = run(started.machine, { type: 'preflight-done', generation: 1, outcome: { kind: 'ok' } });
    expect(types(checked.effects)).toEqual(['spawn']);
    const spawned = run(checked.machine, { type: 'spawned', generation: 1, pid: 7 });
    expect(types(spawned.effects)).toEqual(['record', 'stopped->starting', 'probe']);
    expect(spawned.machine).toMatchObject({ pid: 7, launch: null, since: NOW, reason: 'go' });
  });

  it('a stop during the spawn stops the process as soon as it exists', () => {
    const stopped = run(ROWS['stopped (spawning)'], { type: 'stop', reason: 'stop' });
    expect(stopped.machine.launch?.stopAfterSpawn).toBe('stopping');
    const spawned = run(stopped.machine, { type: 'spawned', generation: 2, pid: 9 });
    expect(types(spawned.effects)).toEqual(['record', 'stopped->starting', 'cancel-timer', 'starting->stopping', 'signal', 'set-timer']);
  });

  it('the kill timer sends SIGKILL and says how long SIGTERM waited', () => {
    const { effects } = run(ROWS.stopping, { type: 'timer', timer: 'kill' });
    expect(effects).toEqual([
      { type: 'log', level: 'warn', event: 'kill', message: 'still running 1.0 s after SIGTERM, sending SIGKILL', fields: { pid: 100 } },
      { type: 'signal', signal: 'SIGKILL' },
    ]);
  });

  it('a crash counts its backoff from the exit, not from when the sweep finished', () => {
    const { machine, effects } = run(ROWS.ready, { type: 'exited', generation: 1, status: { code: 1, signal: null }, tail: [], at: NOW - 30 });
    expect(machine.nextRestartAt).toBe(NOW - 30 + 1000);
    expect(effects.find((e) => e.type === 'set-timer')).toEqual({ type: 'set-timer', timer: 'backoff', ms: 970 });
  });

  it('a failing exit follows the restart policy with the failure as its reason', () => {
    const exit = { type: 'exited', generation: 1, status: { code: null, signal: 'SIGTERM' }, tail: [], at: NOW } as const;
    expect(run(ROWS.failing, exit).machine.lastExit).toEqual({ code: null, signal: 'SIGTERM', reason: 'x' });
    expect(run(ROWS.failing, exit, { restart: 'never' }).machine).toMatchObject({ state: 'fatal', lastExit: { reason: 'x (restart = "never")' } });
  });

  it('a wait past its limit gives up with the reason it was given', () => {
    const m = { ...ROWS['stopped (preflight)'], waitSince: NOW - 10_001 };
    const { machine } = run(m, { type: 'preflight-done', generation: 2, outcome: { kind: 'wait', reason: 'held', limitMs: 10_000, giveUp: 'port taken' } });
    expect(machine).toMatchObject({ state: 'fatal', lastExit: { reason: 'port taken' }, waitSince: null });
  });

  it('a reduced fit is a warning by default, and with on_fit_reduced = "fail" a stop that ends fatal, not in a restart', () => {
    const fit = { type: 'fit-reduced', generation: 1, reason: 'ctx 71936/131072, fitted to 54641 MiB free on GPU 0' } as const;
    expect(run(ROWS.starting, fit).effects).toEqual([{ type: 'log', level: 'warn', event: 'fit-reduced', message: fit.reason, fields: { reason: fit.reason } }]);
    const failing = run(ROWS.starting, fit, { onFitReduced: 'fail' });
    expect(failing.machine).toMatchObject({ state: 'failing', giveUp: true, stopReason: `${fit.reason} (on_fit_reduced = "fail")` });
    const exited = run(failing.machine, { type: 'exited', generation: 1, status: { code: 0, signal: null }, tail: [], at: NOW }, { onFitReduced: 'fail' });
    expect(exited.machine).toMatchObject({ state: 'fatal', lastExit: { reason: `${fit.reason} (on_fit_reduced = "fail")` } });
  });

  it('a start from fatal resets the restart budget', () => {
    const m = { ...ROWS.fatal, restartsAt: [NOW - 1, NOW - 2], attempt: 4 };
    expect(run(m, { type: 'start', reason: 'go' }).machine).toMatchObject({ restartsAt: [], attempt: 0 });
  });
});
