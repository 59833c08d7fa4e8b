{{/* Names and labels shared by every manifest. */}}
{{- define "tessera.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tessera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tessera.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tessera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (web, builder, migrate). */}}
{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tessera.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tessera.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tessera.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tessera.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tessera.builderImage" -}}
{{- printf "%s:%s" (default .Values.image.repository .Values.image.builderRepository) (default (default .Chart.AppVersion .Values.image.tag) .Values.image.builderTag) -}}
{{- end -}}

{{/* The environment every Tessera container gets: addresses, secrets, logs. */}}
{{- define "tessera.env" -}}
- name: TESSERA_CONFIG
  value: /etc/tessera/tessera.toml
- name: TESSERA_DATA_DIR
  value: /var/lib/tessera
- name: TESSERA_LISTEN
  value: "0.0.0.0:8080"
- name: TESSERA_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: TESSERA_APPS_ORIGIN
  value: {{ .Values.appsOrigin | quote }}
- name: TESSERA_BUILDER_URL
  value: {{ printf "http://%s-builder:%d" (include "tessera.fullname" .) (int .Values.service.port) | quote }}
- name: TESSERA_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
- name: TESSERA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
{{- if .Values.redis.enabled }}
- name: TESSERA_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.key }}
{{- end }}
- name: TESSERA_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secretKey.existingSecret }}
      key: {{ .Values.secretKey.key }}
{{- if .Values.metrics.existingSecret }}
- name: TESSERA_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.metrics.existingSecret }}
      key: {{ .Values.metrics.key }}
{{- end }}
{{- end -}}

{{/* Probes on the HTTP port: ready when the database (and Redis) answer, alive on /healthz. */}}
{{- define "tessera.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 60
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}
