{{/* Labels every object carries, as manifests/base's kustomization sets them. */}}
{{- define "podgate.labels" -}}
app.kubernetes.io/part-of: podgate
{{- end -}}


{{/*
The injector's config.yaml: injector.config, plus the capture mode when it is not the injector's
default (cni), so that the default values render exactly manifests/base's ConfigMap.
*/}}
{{- define "podgate.injectorConfig" -}}
{{- $mode := .Values.capture.mode | default "cni" -}}
{{- if not (has $mode (list "cni" "init" "none")) -}}
{{- fail (printf "capture.mode must be cni, init or none, not %q" $mode) -}}
{{- end -}}
{{- if regexMatch "(?m)^capture:" .Values.injector.config -}}
{{- fail "injector.config sets capture: set the chart value capture.mode instead" -}}
{{- end -}}
{{- .Values.injector.config -}}
{{- if ne $mode "cni" }}capture: {{ $mode }}{{ "\n" }}{{- end -}}
{{- end -}}
