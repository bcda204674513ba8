// Validation of rendered manifests. Built-in kinds: the API's own schemas as
// kubernetes-models ships them (types, enums, required fields, formats). Those
// let unknown fields through, as the API server would only prune them, so pod
// templates are also checked strictly (kubectl's --validate=strict: an unknown
// field is an error) against the PodTemplateSpec schema embedded in LWS's CRD,
// vendored in fixtures/ with its source. LeaderWorkerSets: that CRD schema, strict.
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';

export type Manifest = Record<string, any>;

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

const LWS = JSON.parse(readFileSync(new URL('../fixtures/lws-leaderworkerset-v1.schema.json', import.meta.url), 'utf8'));

/** Every object schema with properties refuses other fields, unless it says it keeps unknown fields. */
export function strictSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictSchema);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'enum' || k === 'default' || k === 'example' ? v : strictSchema(v)]));
  if (out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  return out;
}

// OpenAPI v3 as Kubernetes writes it: x-kubernetes-* keywords are annotations, formats (int32, quantity) are not checked here.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const lwsStrict = strictSchema(LWS.openAPIV3Schema) as Record<string, any>;
const validateLws = ajv.compile(lwsStrict);
const validatePodTemplate = ajv.compile(lwsStrict.properties.spec.properties.leaderWorkerTemplate.properties.workerTemplate);

function explain(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`).join('; ');
}

/** Throws with every problem named; returns the kind checked. */
export function validateManifest(doc: Manifest): string {
  const key = `${doc.apiVersion}/${doc.kind}`;
  if (key === `${LWS.group}/${LWS.version}/${LWS.kind}`) {
    const name = String(doc.metadata?.name);
    if (!validateLws(doc)) throw new Error(`${key} ${name}: ${explain(validateLws)}`);
    validatePodTemplateStrictly(doc.spec.leaderWorkerTemplate.workerTemplate, `${doc.metadata.name} workerTemplate`);
    if (doc.spec.leaderWorkerTemplate.leaderTemplate) validatePodTemplateStrictly(doc.spec.leaderWorkerTemplate.leaderTemplate, `${doc.metadata.name} leaderTemplate`);
    return key;
  }
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema for ${key} here: add it to test/deploy/support/manifests.ts`);
  new Model(doc).validate();
  if (doc.kind === 'Deployment') validatePodTemplateStrictly(doc.spec.template, `${doc.metadata.name} template`);
  return key;
}

export function validatePodTemplateStrictly(template: unknown, what: string): void {
  if (!validatePodTemplate(template)) throw new Error(`${what}: ${explain(validatePodTemplate)}`);
}

/** Every exec probe command in a pod spec, with where it is. */
export function probeCommands(podSpec: Manifest): Array<{ where: string; command: string[] }> {
  const found: Array<{ where: string; command: string[] }> = [];
  for (const c of podSpec.containers ?? []) {
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      if (c[probe]?.exec) found.push({ where: `${c.name}.${probe}`, command: c[probe].exec.command });
    }
  }
  return found;
}
