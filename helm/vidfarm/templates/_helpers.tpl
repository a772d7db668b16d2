{{- define "vidfarm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vidfarm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "component" "web") */}}
{{- define "vidfarm.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vidfarm.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}

{{- define "vidfarm.redisUrl" -}}
{{- if .Values.redis.external.url -}}
{{ .Values.redis.external.url }}
{{- else -}}
{{ printf "redis://%s-redis:6379/0" (include "vidfarm.fullname" .) }}
{{- end -}}
{{- end -}}

{{/* every farm container reads its settings from the ConfigMap and the Secret */}}
{{- define "vidfarm.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "vidfarm.fullname" . }}
  - secretRef:
      name: {{ include "vidfarm.fullname" . }}
{{- end -}}

{{- define "vidfarm.podSpecCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "vidfarm.mediaClaim" -}}
{{- .Values.media.existingClaim | default (printf "%s-media" (include "vidfarm.fullname" .)) -}}
{{- end -}}

{{/* volumes of a farm pod: the shared media and a writable /tmp (the root filesystem is read-only) */}}
{{- define "vidfarm.volumes" -}}
volumes:
  - name: media
    persistentVolumeClaim:
      claimName: {{ include "vidfarm.mediaClaim" . }}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "vidfarm.volumeMounts" -}}
volumeMounts:
  - name: media
    mountPath: /data
  - name: tmp
    mountPath: /tmp
{{- end -}}
