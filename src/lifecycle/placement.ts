// Where a model can be loaded, and what must make room: a pure planner over
// memory per device. The rules, each a complaint about llama-swap, llama.cpp's
// router or Ollama made into a rule: eviction is by memory, not by count; the
// exclusive group's other member goes first; then idle instances, then the
// least recently used; a pinned instance never; a busy one only after it has
// drained (the executor does that); and a load that cannot fit says why.

/** A device's key: `gpu:0`, or `host` where there are no GPUs (CPU inference). */
export type DeviceKey = `gpu:${number}` | 'host';

/** One instance as placement sees it. */
export interface PlacementCandidate {
  name: string;
  /** Holds memory now (loaded, or loading). */
  loaded: boolean;
  devices: readonly DeviceKey[];
  /** MiB on each of its devices. */
  needMiB: number;
  pinned: boolean;
  /** Requests in flight or queued: evicted only after a drain. */
  busy: boolean;
  lastUsedAt: number;
  group: string | null;
}

export type LoadPlan =
  | { ok: true; evict: Array<{ name: string; why: string }> }
  | { ok: false; reason: string };

/** The instances to unload so that `target` fits, or why it cannot. Budgets absent for a device mean no limit there. */
export function planLoad({ target, candidates, budgetMiB }: { target: string; candidates: readonly PlacementCandidate[]; budgetMiB: ReadonlyMap<DeviceKey, number> }): LoadPlan {
  const me = candidates.find((c) => c.name === target);
  if (me === undefined) return { ok: false, reason: `no instance named "${target}"` };
  const evict = new Map<string, string>();
  const others = candidates.filter((c) => c.name !== target && c.loaded);

  if (me.group !== null) {
    for (const other of others.filter((c) => c.group === me.group)) {
      if (other.pinned) return { ok: false, reason: `"${other.name}" of exclusive group "${me.group}" is loaded and pinned` };
      evict.set(other.name, `exclusive group "${me.group}"`);
    }
  }

  for (const device of me.devices) {
    const budget = budgetMiB.get(device);
    if (budget === undefined) continue;
    if (me.needMiB > budget) return { ok: false, reason: `needs ${me.needMiB} MiB on ${describeDevice(device)}, which has ${budget} MiB for models in all` };
    const here = others.filter((c) => c.devices.includes(device));
    const used = () => here.filter((c) => !evict.has(c.name)).reduce((sum, c) => sum + c.needMiB, 0);
    // Idle ones first, then the least recently used; pinned ones never.
    const order = here.filter((c) => !c.pinned && !evict.has(c.name)).sort((a, b) => Number(a.busy) - Number(b.busy) || a.lastUsedAt - b.lastUsedAt);
    for (const victim of order) {
      if (budget - used() >= me.needMiB) break;
      evict.set(victim.name, `room on ${describeDevice(device)} (${victim.busy ? 'least recently used, drained first' : 'idle'})`);
    }
    const free = budget - used();
    if (free < me.needMiB) {
      const held = here.filter((c) => !evict.has(c.name)).map((c) => `${c.name} (${c.needMiB} MiB${c.pinned ? ', pinned' : ''})`);
      return { ok: false, reason: `needs ${me.needMiB} MiB on ${describeDevice(device)}, ${Math.max(free, 0)} MiB available, held by ${held.join(', ') || 'nothing we run'}` };
    }
  }
  return { ok: true, evict: [...evict].map(([name, why]) => ({ name, why })) };
}

/** `GPU 0`, `host memory`. */
export function describeDevice(device: DeviceKey): string {
  return device === 'host' ? 'host memory' : `GPU ${device.slice(4)}`;
}
