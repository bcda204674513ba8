{{/* The release's name for every object, cut to what DNS labels allow. */}}
{{- define "infer-dev.fullname" -}}
{{- if eq .Release.Name .Chart.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "infer-dev.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "infer-dev.labels" -}}
{{ include "infer-dev.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "infer-dev.sshSecret" -}}
{{- if .Values.ssh.existingSecret -}}
{{- .Values.ssh.existingSecret -}}
{{- else -}}
{{- include "infer-dev.fullname" . }}-ssh
{{- end -}}
{{- end -}}

{{/* Everything stops within the budget (SUPERVISOR_STOP_BUDGET_S); the kubelet SIGKILLs after the grace period, so that must be longer. */}}
{{- define "infer-dev.gracePeriod" -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) (add .Values.stopBudgetS 5) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least stopBudgetS + 5 (%d): the kubelet would SIGKILL the supervisor while it stops the instances" (int .Values.terminationGracePeriodSeconds) (add .Values.stopBudgetS 5)) -}}
{{- end -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add .Values.stopBudgetS 10 -}}
{{- end -}}
{{- end -}}
