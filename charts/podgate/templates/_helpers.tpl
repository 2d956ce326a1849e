{{/* Labels every object carries, as manifests/base's kustomization sets them. */}}
{{- define "podgate.labels" -}}
app.kubernetes.io/part-of: podgate
{{- end -}}
