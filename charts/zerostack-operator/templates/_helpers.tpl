{{/*
The chart's name: `nameOverride` or the chart name. Used in app.kubernetes.io/name.
*/}}
{{- define "zerostack-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The name every object of this release gets: `<release>-<name>`, or just the release name when it
already contains the name (release "zerostack-operator" gives "zerostack-operator", not
"zerostack-operator-zerostack-operator"); `fullnameOverride` replaces it. It includes the release
so that two releases in one cluster never share a cluster-scoped object (ClusterRole,
ClusterRoleBinding) or, in one namespace, a namespaced one (Deployment, Lease, ...). 63 characters
at most: it is used where Kubernetes wants a DNS label.
*/}}
{{- define "zerostack-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The metrics Service: a Service name is a DNS label (63 characters), so the fullname is cut to
leave room for the suffix.
*/}}
{{- define "zerostack-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "zerostack-operator.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/*
The Lease the replicas elect a leader with (passed as LEADER_ELECTION_LEASE). One per release:
two releases are two independent operators (each with its own watchNamespace), and sharing a
Lease would leave one of them idle forever.
*/}}
{{- define "zerostack-operator.leaseName" -}}
{{- include "zerostack-operator.fullname" . -}}
{{- end -}}

{{- define "zerostack-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object. The selector labels are a subset and never change between chart
versions: a Deployment's selector is immutable, so changing them would break `helm upgrade`.
*/}}
{{- define "zerostack-operator.labels" -}}
helm.sh/chart: {{ include "zerostack-operator.chart" . }}
{{ include "zerostack-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zerostack
{{- end -}}

{{- define "zerostack-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zerostack-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zerostack-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zerostack-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
