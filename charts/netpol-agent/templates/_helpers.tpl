{{/* The labels every object carries (the same as manifests/). */}}
{{- define "netpol-agent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
{{- end }}

{{- define "netpol-agent.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The restricted security context of the init and uninstall containers: root, no capability. */}}
{{- define "netpol-agent.rootWithoutCapabilities" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsUser: 0
runAsNonRoot: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
