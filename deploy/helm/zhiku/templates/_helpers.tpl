{{- define "zhiku.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "zhiku.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "zhiku.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zhiku.databaseSecret" -}}
{{- if .Values.postgres.existingSecret -}}{{ .Values.postgres.existingSecret }}{{- else -}}{{ include "zhiku.fullname" . }}-database{{- end -}}
{{- end -}}

{{/* Environment every zhiku container gets. */}}
{{- define "zhiku.env" -}}
- name: ZHIKU_SERVER_BIND
  value: "0.0.0.0:{{ .Values.service.port }}"
{{- if eq .Values.mode "postgres" }}
- name: ZHIKU_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "zhiku.databaseSecret" . }}
      key: DATABASE_URL
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Mounts of every zhiku container: the data directory, the configuration, the models. */}}
{{- define "zhiku.mounts" -}}
- name: data
  mountPath: /data
- name: config
  mountPath: /etc/zhiku
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.models.existingClaim }}
- name: models
  mountPath: /data/models
  readOnly: true
{{- end }}
{{- end -}}

{{- define "zhiku.volumes" -}}
- name: config
  configMap:
    name: {{ include "zhiku.fullname" . }}
- name: tmp
  emptyDir: {}
{{- if .Values.models.existingClaim }}
- name: models
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
    readOnly: true
{{- end }}
{{- end -}}

{{/* Installs the default models when no volume provides them. */}}
{{- define "zhiku.setup" -}}
{{- if not .Values.models.existingClaim }}
initContainers:
  - name: setup
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: ["setup"]
    securityContext: {{- toYaml .Values.securityContext | nindent 6 }}
    {{- with .Values.models.setupEnv }}
    env: {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: data
        mountPath: /data
      - name: tmp
        mountPath: /tmp
{{- end }}
{{- end -}}

{{- define "zhiku.probes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 10
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 20
  failureThreshold: 6
{{- end -}}
