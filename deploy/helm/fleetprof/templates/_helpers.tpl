{{- define "fleetprof.name" -}}{{ .Release.Name }}{{- end -}}
{{- define "fleetprof.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "fleetprof.labels" -}}
app.kubernetes.io/name: fleetprof
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "fleetprof.tokenSecret" -}}{{ .Values.auth.existingSecret | default (printf "%s-token" .Release.Name) }}{{- end -}}
{{- define "fleetprof.readTokenSecret" -}}{{ .Values.auth.readExistingSecret | default (printf "%s-read-token" .Release.Name) }}{{- end -}}
{{- define "fleetprof.readAuth" -}}{{ or .Values.auth.readToken .Values.auth.readExistingSecret }}{{- end -}}
{{- define "fleetprof.embedded" -}}{{ eq .Values.clickhouse.mode "embedded" }}{{- end -}}
