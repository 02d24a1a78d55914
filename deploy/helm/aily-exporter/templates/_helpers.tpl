{{/* The chart's name, or nameOverride. */}}
{{- define "aily-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name, with the chart's unless it holds it. */}}
{{- define "aily-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aily-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aily-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aily-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aily-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "aily-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aily-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the app secrets, if any. */}}
{{- define "aily-exporter.secretName" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecret }}{{ else if .Values.secrets }}{{ include "aily-exporter.fullname" . }}{{ end }}
{{- end }}

{{- define "aily-exporter.sessionsConfigMapName" -}}
{{- if .Values.existingSessionsConfigMap }}{{ .Values.existingSessionsConfigMap }}{{ else if .Values.sessionsFiles }}{{ include "aily-exporter.fullname" . }}-sessions{{ end }}
{{- end }}

{{- define "aily-exporter.webConfigSecretName" -}}
{{- if .Values.webConfig.existingSecret }}{{ .Values.webConfig.existingSecret }}{{ else }}{{ include "aily-exporter.fullname" . }}-web-config{{ end }}
{{- end }}

{{/* The exporter's arguments. */}}
{{- define "aily-exporter.args" -}}
{{- if .Values.demo }}
- --demo
{{- else }}
- --config.file=/etc/aily_exporter/config/aily.yml
- --storage.path=/data
{{- end }}
{{- if .Values.webConfig.enabled }}
- --web.config.file=/etc/aily_exporter/web/web-config.yml
{{- end }}
{{- range $name, $value := .Values.flags }}
{{- if kindIs "bool" $value }}
{{- if $value }}
- --{{ $name }}
{{- end }}
{{- else }}
- --{{ $name }}={{ $value }}
{{- end }}
{{- end }}
{{- if or (gt (int .Values.sharding.shards) 1) .Values.highAvailability }}
- --shard=auto
- --total-shards={{ .Values.sharding.shards }}
- --shard.key={{ .Values.sharding.key }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}
