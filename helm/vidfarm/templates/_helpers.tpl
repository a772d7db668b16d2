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

{{/* The components of this release that run, in one list (the NetworkPolicies follow it). */}}
{{- define "vidfarm.components" -}}
{{- $c := list "web" -}}
{{- range $kind := list "ingest" "live" "cpu" "gpu" -}}
{{- if (index $.Values.workers $kind).enabled -}}{{- $c = append $c (printf "worker-%s" $kind) -}}{{- end -}}
{{- end -}}
{{- if .Values.cameraIngest.enabled -}}{{- $c = append $c "camera-ingest" -}}{{- end -}}
{{- if .Values.beat.enabled -}}{{- $c = append $c "beat" -}}{{- end -}}
{{- if .Values.autoscaler.enabled -}}{{- $c = append $c "autoscaler" -}}{{- end -}}
{{- if .Values.flower.enabled -}}{{- $c = append $c "flower" -}}{{- end -}}
{{- if .Values.migrations.enabled -}}{{- $c = append $c "db-migrate" -}}{{- end -}}
{{- if not .Values.redis.external.url -}}{{- $c = append $c "redis" -}}{{- end -}}
{{- if eq .Values.database.type "postgresql" -}}{{- $c = append $c "postgresql" -}}{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/* A credential: the value given in values, else the one the release's Secret already holds
(`lookup`: kept across upgrades; offline it finds nothing), else a new random one. Memoised
for the render, so that every Secret of one install that carries it holds the same value.
(dict "root" $ "homes" (list "<secret>/<key>" ...) "given" <value from values> "format" "user:%s")
The first home is where the credential lives; later ones are older places it lived. */}}
{{- define "vidfarm.credential" -}}
{{- $root := .root -}}
{{- if not (hasKey $root "vidfarmCredentials") -}}{{- $_ := set $root "vidfarmCredentials" dict -}}{{- end -}}
{{- $memo := $root.vidfarmCredentials -}}
{{- $home := first .homes -}}
{{- if not (hasKey $memo $home) -}}
{{- $value := .given | default "" -}}
{{- range $place := .homes -}}
{{- if not $value -}}
{{- $secret := lookup "v1" "Secret" $root.Release.Namespace (dir $place) -}}
{{- $value = dig "data" (base $place) "" $secret | b64dec -}}
{{- end -}}
{{- end -}}
{{- $_ := set $memo $home ($value | default (printf (.format | default "%s") (randAlphaNum 40))) -}}
{{- end -}}
{{- index $memo $home -}}
{{- end -}}

{{- define "vidfarm.redisPassword" -}}
{{- include "vidfarm.credential" (dict "root" . "homes" (list (printf "%s-redis/REDISCLI_AUTH" (include "vidfarm.fullname" .)))) -}}
{{- end -}}

{{- define "vidfarm.postgresPassword" -}}
{{- include "vidfarm.credential" (dict "root" . "homes" (list (printf "%s-postgresql/password" (include "vidfarm.fullname" .)))) -}}
{{- end -}}

{{/* Broker URL, with the bundled Redis's password in it */}}
{{- define "vidfarm.redisUrl" -}}
{{- if .Values.redis.external.url -}}
{{ .Values.redis.external.url }}
{{- else -}}
{{ printf "redis://:%s@%s-redis:6379/0" (include "vidfarm.redisPassword" .) (include "vidfarm.fullname" .) }}
{{- end -}}
{{- end -}}

{{/* SQLAlchemy URL of the records; empty when it comes from an existing Secret or SQLite */}}
{{- define "vidfarm.databaseUrl" -}}
{{- $db := .Values.database -}}
{{- if eq $db.type "postgresql" -}}
{{ printf "postgresql+psycopg://vidfarm:%s@%s-postgresql:5432/vidfarm" (include "vidfarm.postgresPassword" .) (include "vidfarm.fullname" .) }}
{{- else if eq $db.type "external" -}}
{{ $db.external.url }}
{{- else if not $db.sqlite.singleNode -}}
{{- fail "database.type=sqlite keeps the records in one SQLite file on the shared media volume, which network filesystems cannot lock safely: use database.type=postgresql (the default) or external, or set database.sqlite.singleNode=true when every pod runs on one node" -}}
{{- end -}}
{{- end -}}

{{/* An upgrade from the chart's single-Secret version (the Secret named like the release) to
the chart's own PostgreSQL would start on an empty database: refuse, and say what to set. */}}
{{- define "vidfarm.refuseEmptyDatabaseOnUpgrade" -}}
{{- if and .Release.IsUpgrade (eq .Values.database.type "postgresql") -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "vidfarm.fullname" .) -}}
{{- if $old -}}
{{- if hasKey ($old.data | default dict) "DATABASE_URL" -}}
{{- fail "this release keeps its records in the database of secrets.databaseUrl; upgrading with database.type=postgresql would start an empty one: set database.type=external with database.external.existingSecret (or database.external.url)" -}}
{{- else -}}
{{- fail "this release keeps its records in SQLite on the media volume (the earlier default); upgrading with database.type=postgresql would start an empty PostgreSQL: copy the records into a PostgreSQL and set database.type=external, or keep SQLite with database.type=sqlite and database.sqlite.singleNode=true (one node only)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The service URLs a component's Secret carries, as JSON: REDIS_URL and/or DATABASE_URL
(none when the URL comes from the operator's own Secret, or for SQLite).
(dict "root" $ "redis" bool "database" bool) */}}
{{- define "vidfarm.serviceUrls" -}}
{{- $urls := dict -}}
{{- if .redis -}}{{- $_ := set $urls "REDIS_URL" (include "vidfarm.redisUrl" .root) -}}{{- end -}}
{{- $database := include "vidfarm.databaseUrl" .root -}}
{{- if and .database $database -}}{{- $_ := set $urls "DATABASE_URL" $database -}}{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/* The database URL from the operator's own Secret (database.external.existingSecret), as env */}}
{{- define "vidfarm.databaseEnv" -}}
{{- with .Values.database.external.existingSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.database.external.existingSecretKey }}}
{{- end }}
{{- end -}}

{{/* true when the blobs live in S3 (no shared media volume) */}}
{{- define "vidfarm.s3" -}}
{{- if eq .Values.blobStore.type "s3" -}}
{{- if not .Values.blobStore.s3.bucket -}}
{{- fail "blobStore.type=s3 needs blobStore.s3.bucket (an existing bucket)" -}}
{{- end -}}
{{- if eq .Values.database.type "sqlite" -}}
{{- fail "database.type=sqlite keeps its file on the shared media volume, which blobStore.type=s3 does not mount: use database.type=postgresql (the default) or external" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The S3 credentials given as values, as JSON (kept in the Secrets of the components that use
the store); none from an existing Secret or a pod role */}}
{{- define "vidfarm.s3Credentials" -}}
{{- $s3 := .Values.blobStore.s3 -}}
{{- if and (include "vidfarm.s3" .) (not $s3.existingSecret) $s3.accessKeyId -}}
{{- toJson (dict "AWS_ACCESS_KEY_ID" $s3.accessKeyId "AWS_SECRET_ACCESS_KEY" $s3.secretAccessKey) -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* The S3 credentials from the operator's own Secret (blobStore.s3.existingSecret), as env */}}
{{- define "vidfarm.s3Env" -}}
{{- if include "vidfarm.s3" . }}
{{- with .Values.blobStore.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.blobStore.s3.accessKeyIdKey }}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.blobStore.s3.secretAccessKeyKey }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* env a component that reads the records and the blobs takes from the operator's Secrets */}}
{{- define "vidfarm.storageEnv" -}}
{{- include "vidfarm.databaseEnv" . }}
{{- include "vidfarm.s3Env" . }}
{{- end -}}

{{/* The alert webhooks' signing key from the operator's own Secret (alerts.webhooks.existingSecret), as env */}}
{{- define "vidfarm.webhookEnv" -}}
{{- with .Values.alerts.webhooks.existingSecret }}
- name: VIDFARM_ALERT_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.alerts.webhooks.existingSecretKey }}}
{{- end }}
{{- end -}}

{{/* One worker kind's autoscaler bounds, refused when minReplicas > maxReplicas: values.schema.json
checks each number alone, and the autoscaler would stop at its start (its settings refuse it too).
(dict "kind" "cpu" "scaling" .Values.autoscaler.cpu) */}}
{{- define "vidfarm.replicaBounds" -}}
{{- if gt (int .scaling.minReplicas) (int .scaling.maxReplicas) -}}
{{- fail (printf "autoscaler.%s.minReplicas (%d) is above autoscaler.%s.maxReplicas (%d): raise maxReplicas or lower minReplicas" .kind (int .scaling.minReplicas) .kind (int .scaling.maxReplicas)) -}}
{{- end -}}
{{- end -}}

{{/* a farm container reads its settings from the ConfigMap and its component's own Secret:
(dict "root" $ "secret" "worker") */}}
{{- define "vidfarm.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "vidfarm.fullname" .root }}
  - secretRef:
      name: {{ include "vidfarm.fullname" .root }}-{{ .secret }}
{{- end -}}

{{- define "vidfarm.podSpecCommon" -}}
{{/* No Service links: Kubernetes would give each pod <SERVICE>_PORT=tcp://IP:PORT and the like
for every Service in the namespace, and for a release named vidfarm those are VIDFARM_FLOWER_PORT,
VIDFARM_WEB_PORT... which the settings read as theirs (an int setting then fails to start the
pod). The farm finds its Services by the URLs in its settings. */}}
enableServiceLinks: false
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

{{/* volumes of a farm pod: the shared media (with S3: this pod's read cache of the bucket) and
a writable /tmp (the root filesystem is read-only) */}}
{{- define "vidfarm.volumes" -}}
volumes:
  - name: media
    {{- if include "vidfarm.s3" . }}
    emptyDir: {sizeLimit: {{ mul 2 .Values.blobStore.s3.cacheSizeGi }}Gi}
    {{- else }}
    persistentVolumeClaim:
      claimName: {{ include "vidfarm.mediaClaim" . }}
    {{- end }}
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
