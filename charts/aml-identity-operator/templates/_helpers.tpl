{{- define "aml.name" -}}aml-identity-operator{{- end -}}

{{- define "aml.fullname" -}}
{{- if contains "aml-identity-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-aml-identity-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aml.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aml.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aml.labels" -}}
{{ include "aml.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aml.serviceAccountName" -}}
{{- default (include "aml.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "aml.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "aml.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "aml.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "aml.webhook.secretName" -}}
{{- printf "%s-webhook-tls" (include "aml.fullname" . | trunc 51 | trimSuffix "-") -}}
{{- end -}}

{{- define "aml.webhook.notAfterAnnotation" -}}identity.aml.dev/webhook-certificate-not-after{{- end -}}

{{/*
The webhook's TLS material as JSON: base64 "ca.crt", "tls.crt", "tls.key", and "notAfter"
(Unix seconds). The existing Secret's when it is complete and more than 30 days from
expiry, so upgrades keep the certificate and the caBundle; otherwise a new CA (its key is
never stored) and a serving certificate for <service>.<namespace>.svc. Computed once per
render and kept on the root context, which every template of the chart shares: the
Secret, the caBundle and the Pod's checksum see the same certificate. (`helm template`
cannot look up, so it makes a new one on every render.)
*/}}
{{- define "aml.webhook.tls" -}}
{{- if not (hasKey $ "amlWebhookTLS") -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "aml.webhook.secretName" .) | default dict -}}
{{- $data := get $secret "data" | default dict -}}
{{- $notAfter := dig "metadata" "annotations" (include "aml.webhook.notAfterAnnotation" .) "0" $secret | int64 -}}
{{- $tls := dict -}}
{{- if and (get $data "ca.crt") (get $data "tls.crt") (get $data "tls.key") (gt (sub $notAfter $now) (mul 30 86400)) -}}
{{- $tls = dict "ca.crt" (get $data "ca.crt") "tls.crt" (get $data "tls.crt") "tls.key" (get $data "tls.key") "notAfter" ($notAfter | toString) -}}
{{- else -}}
{{- $days := int .Values.webhook.certificate.validityDays -}}
{{- $service := include "aml.webhook.serviceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $host := printf "%s.%s.svc" $service $ns -}}
{{- $ca := genCA (printf "%s CA" $service) $days -}}
{{- $names := list $service (printf "%s.%s" $service $ns) $host (printf "%s.cluster.local" $host) -}}
{{- $cert := genSignedCert $host nil $names $days $ca -}}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "notAfter" (add $now (mul $days 86400) | toString) -}}
{{- end -}}
{{- $_ := set $ "amlWebhookTLS" $tls -}}
{{- end -}}
{{- get $ "amlWebhookTLS" | toJson -}}
{{- end -}}
