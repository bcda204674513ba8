// Which instance serves a request, from the body's `model`: an instance name
// or alias first, then the first matching `[gateway.models]` pattern, then
// the default. Built once per (re)load; resolving is a map lookup, and a
// pattern match is remembered per name.
import type { ModelRule } from '../config/gateway-plan.ts';
import { compileGlob, normalizeModelName } from './glob.ts';

/** How a model name was matched. */
export type RouteVia = 'name' | 'alias' | 'pattern' | 'default';

export interface Route {
  instance: string;
  via: RouteVia;
}

/** One instance as routing knows it. */
export interface RouteTarget {
  name: string;
  aliases: readonly string[];
}

/** One id of `GET /v1/models`. */
export interface ModelId {
  id: string;
  instance: string;
  via: Exclude<RouteVia, 'default'>;
}

export interface RouteTable {
  /** The instance for a body's `model` (any value; non-strings count as absent); null: none and no default. */
  resolve(model: unknown): Route | null;
  /** The instance a name or alias names, without patterns or the default (the router API's `model`). */
  resolveExact(model: string): string | null;
  /** Every model id the gateway answers to, instances first, then patterns, without duplicates. */
  readonly ids: readonly ModelId[];
  /** What the 404 message lists. */
  readonly known: readonly string[];
}

/** Distinct names resolved by patterns are remembered up to this many (a client inventing names cannot grow it further). */
const PATTERN_CACHE_LIMIT = 1024;

/** Builds the route table from the instances, the pattern rules and the default. */
export function makeRouteTable({
  targets,
  models,
  defaultInstance,
}: {
  targets: readonly RouteTarget[];
  models: readonly ModelRule[];
  defaultInstance: string | null;
}): RouteTable {
  const exact = new Map<string, Route>();
  const ids: ModelId[] = [];
  for (const target of targets) {
    exact.set(normalizeModelName(target.name), { instance: target.name, via: 'name' });
  }
  for (const target of targets) {
    for (const alias of target.aliases) {
      const key = normalizeModelName(alias);
      if (!exact.has(key)) exact.set(key, { instance: target.name, via: 'alias' });
    }
  }
  const seen = new Set<string>();
  for (const target of targets) {
    for (const alias of target.aliases) pushId({ ids, seen, id: alias, instance: target.name, via: 'alias' });
    pushId({ ids, seen, id: target.name, instance: target.name, via: 'name' });
  }
  const rules = models.map((rule) => ({ rule, re: compileGlob(rule.pattern) }));
  for (const { rule } of rules) pushId({ ids, seen, id: rule.pattern, instance: rule.instance, via: 'pattern' });

  const fallback: Route | null = defaultInstance === null ? null : { instance: defaultInstance, via: 'default' };
  const patternCache = new Map<string, Route | null>();

  return {
    ids,
    known: [...exact.keys()],
    resolveExact: (model) => exact.get(normalizeModelName(model))?.instance ?? null,
    resolve(model) {
      if (typeof model !== 'string' || model.trim() === '') return fallback;
      const key = normalizeModelName(model);
      const direct = exact.get(key);
      if (direct) return direct;
      let byPattern = patternCache.get(key);
      if (byPattern === undefined) {
        const hit = rules.find(({ re }) => re.test(key));
        byPattern = hit ? { instance: hit.rule.instance, via: 'pattern' } : null;
        if (patternCache.size < PATTERN_CACHE_LIMIT) patternCache.set(key, byPattern);
      }
      return byPattern ?? fallback;
    },
  };
}

function pushId({ ids, seen, id, instance, via }: { ids: ModelId[]; seen: Set<string>; id: string; instance: string; via: ModelId['via'] }): void {
  if (seen.has(id)) return;
  seen.add(id);
  ids.push({ id, instance, via });
}
