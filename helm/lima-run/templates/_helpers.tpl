{{/* Chart name. */}}
{{- define "lima-run.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-scoped prefix of every object. */}}
{{- define "lima-run.fullname" -}}
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

{{- define "lima-run.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; pass (dict "ctx" $ "component" "operator"). */}}
{{- define "lima-run.labels" -}}
helm.sh/chart: {{ include "lima-run.chart" .ctx }}
{{ include "lima-run.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: lima-run
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "lima-run.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lima-run.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "lima-run.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "lima-run.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lima-run.poolsConfigMap" -}}
{{- printf "%s-pools" (include "lima-run.fullname" .) }}
{{- end }}

{{/* Secret holding the S3 credentials (existing or generated). */}}
{{- define "lima-run.s3Secret" -}}
{{- default (printf "%s-s3" (include "lima-run.fullname" .)) .Values.s3.existingSecret }}
{{- end }}

{{- define "lima-run.minioName" -}}
{{- printf "%s-minio" (include "lima-run.fullname" .) }}
{{- end }}

{{- define "lima-run.s3Endpoint" -}}
{{- if .Values.minio.enabled }}
{{- printf "%s.%s.svc:9000" (include "lima-run.minioName" .) .Release.Namespace }}
{{- else }}
{{- required "externalS3.endpoint is required when minio.enabled is false" .Values.externalS3.endpoint }}
{{- end }}
{{- end }}

{{- define "lima-run.s3Secure" -}}
{{- if .Values.minio.enabled }}false{{ else }}{{ .Values.externalS3.secure }}{{ end }}
{{- end }}

{{- define "lima-run.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* Restricted Pod Security Standard. */}}
{{- define "lima-run.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "lima-run.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* S3 environment shared by the operator and the bucket Job (credentials by reference). */}}
{{- define "lima-run.s3Env" -}}
- name: LIMA_S3_ENDPOINT
  value: {{ include "lima-run.s3Endpoint" . | quote }}
- name: LIMA_S3_SECURE
  value: {{ include "lima-run.s3Secure" . | quote }}
{{- with .Values.s3.bucket }}
- name: LIMA_BUCKET
  value: {{ . | quote }}
{{- end }}
{{- if and (not .Values.minio.enabled) .Values.externalS3.region }}
- name: LIMA_S3_REGION
  value: {{ .Values.externalS3.region | quote }}
{{- end }}
- name: LIMA_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "lima-run.s3Secret" . }}
      key: {{ .Values.s3.accessKeyKey }}
- name: LIMA_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "lima-run.s3Secret" . }}
      key: {{ .Values.s3.secretKeyKey }}
{{- end }}

{{/* Namespaces whose Experiments the operator runs (one per line); empty with watchAllNamespaces. */}}
{{- define "lima-run.watchNamespaces" -}}
{{- if not .Values.operator.watchAllNamespaces }}
{{- range (.Values.operator.watchNamespaces | default (list .Release.Namespace)) }}
{{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
KubeRay is a prerequisite. At install/upgrade (not in `helm template`, where lookup finds
nothing), refuse a KubeRay whose RayJob CRD lacks a field every RayJob of ours sets: the API
server would drop it silently. The operator repeats this check on every RayJob it creates,
against the full schema.
*/}}
{{- define "lima-run.kuberayCheck" -}}
{{- if .Values.kuberay.check }}
{{- $crd := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "rayjobs.ray.io" }}
{{- if $crd }}
{{- range $crd.spec.versions }}
{{- if eq .name "v1" }}
{{- $fields := .schema.openAPIV3Schema.properties.spec.properties }}
{{- range list "activeDeadlineSeconds" "backoffLimit" "submitterPodTemplate" "shutdownAfterJobFinishes" "ttlSecondsAfterFinished" "suspend" "rayClusterSpec" }}
{{- if not (hasKey $fields .) }}
{{- fail (printf "the installed KubeRay is too old: its RayJob CRD lacks spec.%s (lima-run supports KubeRay %s)" . (index $.Chart.Annotations "lima-run.io/kuberay-versions")) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
