// The chart renderer (tools/helm-subset): what it renders as helm would, and
// that everything outside its subset is an error naming file and line, so a
// template helm would render differently can never pass silently.
import { describe, expect, it } from 'vitest';
import { TemplateError, renderString } from '../../tools/helm-subset/render.ts';

const root = (values: Record<string, unknown> = {}) => ({ Values: values, Release: { Name: 'r', Namespace: 'ns', Service: 'Helm' }, Chart: { Name: 'c', Version: '1.0.0', AppVersion: '2' } });
const render = (source: string, values?: Record<string, unknown>) => renderString(source, root(values));
const fails = (source: string, values?: Record<string, unknown>) => expect(() => render(source, values));

describe('the helm subset renderer', () => {
  it('values, release and chart fields; trim markers; comments', () => {
    expect(render('a: {{ .Values.x.y }}\nb: {{ .Release.Name }}-{{ .Chart.Name }}', { x: { y: 'v' } })).toBe('a: v\nb: r-c');
    expect(render('x:\n  {{- /* gone */}}\n  {{- " y" }} \n  {{- "z" -}}  \n  w')).toBe('x: yzw');
    // A missing value renders as nothing, as helm's <no value> does.
    expect(render('[{{ .Values.missing }}]')).toBe('[]');
    expect(render('[{{ .Values.missing | quote }}] [{{ .Values.e | quote }}] [{{ 60 | quote }}]', { e: '' })).toBe('[] [""] ["60"]');
  });

  it('if / else if / else, with and range rebind the dot, $ stays the root', () => {
    const t = '{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}';
    expect([render(t, { a: 1 }), render(t, { b: 'x' }), render(t, { a: 0, b: [] })]).toEqual(['A', 'B', 'C']);
    expect(render('{{ with .Values.m }}{{ .k }}/{{ $.Release.Name }}{{ else }}none{{ end }}', { m: { k: 'v' } })).toBe('v/r');
    expect(render('{{ with .Values.m }}x{{ else }}none{{ end }}', { m: {} })).toBe('none');
    expect(render('{{ range .Values.l }}<{{ . }}>{{ end }}', { l: ['a', 'b'] })).toBe('<a><b>');
  });

  it('define and include, pipelines and sub-expressions, the functions helm charts use', () => {
    expect(render('{{- define "n" -}}[{{ .Values.v }}]{{- end -}}{{ include "n" . | quote }}', { v: 'x' })).toBe('"[x]"');
    expect(render('k:{{ toYaml .Values.m | nindent 2 }}', { m: { b: 1, a: ['x'] } })).toBe('k:\n  a:\n    - x\n  b: 1');
    expect(render('{{ .Values.t | default .Chart.AppVersion }} {{ .Values.u | default "d" }}', { u: 'set' })).toBe('2 set');
    expect(render('{{ add .Values.n 10 }} {{ printf "%s-%d" "a" (int .Values.n) }} {{ toJson .Values }}', { n: 60 })).toBe('70 a-60 {"n":60}');
    expect(render('{{ if lt (int .Values.n) (add .Values.n 5) }}ok{{ end }}', { n: 3 })).toBe('ok');
    expect(render('{{ "abcdef-" | trunc 7 | trimSuffix "-" }} {{ and 1 "" }}|{{ or "" "y" }} {{ not .Values.f }}', { f: false })).toBe('abcdef |y true');
  });

  it('errors as helm errs: required, fail, nil pointers, int vs float64 comparison, e-notation floats', () => {
    fails('{{ required "x is required" .Values.x }}').toThrow(/inline:1: x is required/);
    fails('\n{{ fail "no" }}').toThrow(/inline:2: no/);
    fails('{{ .Values.a.b }}').toThrow(/nil pointer evaluating \.Values\.a\.b/);
    // Values are float64 in helm, literals int: Go refuses to compare them.
    fails('{{ if gt .Values.n 0 }}{{ end }}', { n: 1 }).toThrow(/incompatible types for comparison \(float64 and int\)/);
    fails('{{ .Values.n }}', { n: 1000000 }).toThrow(/e-notation; pipe it through int/);
    expect(render('{{ int .Values.n }}', { n: 1000000 })).toBe('1000000');
    fails('{{ .Values.m }}', { m: { a: 1 } }).toThrow(/use toYaml/);
  });

  it('refuses every construct outside the subset instead of guessing', () => {
    fails('{{ $x := 1 }}').toThrow(/not in the renderer's subset/);
    fails('{{ range $i, $e := .Values.l }}{{ end }}').toThrow(/not in the renderer's subset/);
    fails('{{ template "n" . }}').toThrow(/\{\{ template \}\} is not in the renderer's subset/);
    fails('{{ block "n" . }}{{ end }}').toThrow(/not in the renderer's subset/);
    fails('{{ .Files.Get "x" }}').toThrow(/\.Files is not in the renderer's subset/);
    fails('{{ .Capabilities.KubeVersion }}').toThrow(/\.Capabilities is not in the renderer's subset/);
    fails('{{ .Release.Revision }}').toThrow(/\.Release\.Revision is not in the renderer's subset/);
    fails('{{ tpl .Values.x . }}').toThrow(/function "tpl" is not in the renderer's subset/);
    fails('{{ constructor }}').toThrow(/function "constructor" is not in the renderer's subset/);
    fails('{{ lookup "v1" "Secret" "ns" "n" }}').toThrow(/function "lookup"/);
    fails('{{ if .Values.a }}x').toThrow(/has no \{\{ end \}\}/);
    fails('x{{ end }}').toThrow(/without an open block/);
    fails('{{ .Values.a ').toThrow(/unclosed action/);
    fails('{{ include "nope" . }}').toThrow(/no template named "nope"/);
    fails('{{ with .Values.a }}{{ else with .Values.b }}{{ end }}').toThrow(/not in the subset/);
    expect(() => render('{{ 1 }}')).not.toThrow(TemplateError);
  });
});
