// The placement rules, one case each: by memory, not count; the exclusive
// group; idle before least recently used; never pinned; busy ones last; and
// the reason when nothing works.
import { describe, expect, it } from 'vitest';
import { planLoad, type PlacementCandidate } from '../../src/lifecycle/placement.ts';

const c = (name: string, over: Partial<PlacementCandidate> = {}): PlacementCandidate => ({
  name,
  loaded: true,
  devices: ['gpu:0'],
  needMiB: 40_000,
  pinned: false,
  busy: false,
  lastUsedAt: 0,
  group: null,
  ...over,
});
const budget = new Map([['gpu:0', 100_000] as const]);

describe('planLoad', () => {
  it('loads without evicting when it fits, however many are loaded (memory, not count)', () => {
    const small = Array.from({ length: 9 }, (_, i) => c(`s${i}`, { needMiB: 1000 }));
    expect(planLoad({ target: 't', candidates: [...small, c('t', { loaded: false })], budgetMiB: budget })).toEqual({ ok: true, evict: [] });
  });

  it('unloads the other member of its exclusive group, whatever the memory', () => {
    const plan = planLoad({ target: 'b', candidates: [c('a', { group: 'g', needMiB: 1 }), c('b', { loaded: false, group: 'g', needMiB: 1 })], budgetMiB: budget });
    expect(plan).toEqual({ ok: true, evict: [{ name: 'a', why: 'exclusive group "g"' }] });
  });

  it('evicts an idle instance before a busy one, and among them the least recently used', () => {
    const candidates = [c('busy-old', { busy: true, lastUsedAt: 1 }), c('idle-new', { lastUsedAt: 9 }), c('idle-old', { lastUsedAt: 5 }), c('t', { loaded: false })];
    const plan = planLoad({ target: 't', candidates, budgetMiB: budget });
    expect(plan).toEqual({ ok: true, evict: [{ name: 'idle-old', why: 'room on GPU 0 (idle)' }, { name: 'idle-new', why: 'room on GPU 0 (idle)' }] });
    const tight = planLoad({ target: 't', candidates: [c('busy-old', { busy: true, lastUsedAt: 1 }), c('busy-new', { busy: true, lastUsedAt: 9 }), c('t', { loaded: false, needMiB: 60_000 })], budgetMiB: budget });
    expect(tight).toEqual({ ok: true, evict: [{ name: 'busy-old', why: 'room on GPU 0 (least recently used, drained first)' }] });
  });

  it('never evicts a pinned one: then it says what is needed, what is free and who holds it', () => {
    const plan = planLoad({ target: 't', candidates: [c('p', { pinned: true, needMiB: 70_000 }), c('t', { loaded: false, needMiB: 40_000 })], budgetMiB: budget });
    expect(plan).toEqual({ ok: false, reason: 'needs 40000 MiB on GPU 0, 30000 MiB available, held by p (70000 MiB, pinned)' });
    expect(planLoad({ target: 'b', candidates: [c('a', { group: 'g', pinned: true }), c('b', { loaded: false, group: 'g' })], budgetMiB: budget })).toEqual({ ok: false, reason: '"a" of exclusive group "g" is loaded and pinned' });
  });

  it('an instance bigger than the whole budget is refused at once, and a device without a budget has no limit', () => {
    expect(planLoad({ target: 't', candidates: [c('t', { loaded: false, needMiB: 200_000 })], budgetMiB: budget })).toEqual({ ok: false, reason: 'needs 200000 MiB on GPU 0, which has 100000 MiB for models in all' });
    expect(planLoad({ target: 't', candidates: [c('t', { loaded: false, needMiB: 200_000, devices: ['gpu:1'] })], budgetMiB: budget })).toEqual({ ok: true, evict: [] });
  });

  it('only instances on the same device make room, on every device the target uses', () => {
    const candidates = [c('other-gpu', { devices: ['gpu:1'] }), c('on-0', { devices: ['gpu:0'], needMiB: 90_000 }), c('t', { loaded: false, devices: ['gpu:0', 'gpu:1'], needMiB: 30_000 })];
    const both = new Map([['gpu:0', 100_000], ['gpu:1', 50_000]] as const);
    expect(planLoad({ target: 't', candidates, budgetMiB: both })).toEqual({ ok: true, evict: [{ name: 'on-0', why: 'room on GPU 0 (idle)' }, { name: 'other-gpu', why: 'room on GPU 1 (idle)' }] });
  });
});
