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

{{/*
Test only: the node address the API server calls the webhook at (hostNetwork.webhookHost
with hostNetwork.enabled), or "" (the webhook Service).
*/}}
{{- define "aml.webhook.hostIP" -}}
{{- if .Values.hostNetwork.enabled }}{{ .Values.hostNetwork.webhookHost }}{{ end -}}
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
{{- $ip := include "aml.webhook.hostIP" . -}}
{{- $ips := ternary (list $ip) nil (ne $ip "") -}}
{{- $cert := genSignedCert $host $ips $names $days $ca -}}
{{- $tls = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) "notAfter" (add $now (mul $days 86400) | toString) -}}
{{- end -}}
{{- $_ := set $ "amlWebhookTLS" $tls -}}
{{- end -}}
{{- get $ "amlWebhookTLS" | toJson -}}
{{- end -}}

{{- define "aml.shardLabel" -}}identity.aml.dev/shard{{- end -}}

{{/*
The operator's Deployments as JSON {"items": [...]}: without `shards` one, named like the
release, with the chart's identity; with `shards` one per shard, named <fullname>-<shard>.
Each item: name, shard ("" without shards), namespaceSelector, clusterResources,
serviceAccountName, ownServiceAccount (the shard overrides the Azure identity), auth
(azure.auth with the shard's overrides), replicas, resources and peering (its
ClusterKopfPeering's name, with ha.enabled). Fails on what values.schema.json cannot say.
*/}}
{{- define "aml.instances" -}}
{{- $replicas := ternary .Values.ha.replicas .Values.replicaCount .Values.ha.enabled -}}
{{- $items := list -}}
{{- if not .Values.shards -}}
{{- $items = append $items (dict "name" (include "aml.fullname" .) "shard" "" "serviceAccountName" (include "aml.serviceAccountName" .) "ownServiceAccount" false "auth" .Values.azure.auth "replicas" $replicas "resources" .Values.resources "peering" .Values.ha.peeringName) -}}
{{- else -}}
{{- $names := list -}}
{{- $selectors := dict -}}
{{- $owners := list -}}
{{- range $i, $shard := .Values.shards -}}
{{- $where := printf "shards[%d] (%s)" $i $shard.name -}}
{{- if has $shard.name $names -}}
{{- fail (printf "%s: another shard has this name; shard names must be unique" $where) -}}
{{- end -}}
{{- $names = append $names $shard.name -}}
{{- with get $selectors $shard.namespaceSelector -}}
{{- fail (printf "%s: shard %s has the same namespaceSelector %q; shards' namespaces must not overlap" $where . $shard.namespaceSelector) -}}
{{- end -}}
{{- $_ := set $selectors $shard.namespaceSelector $shard.name -}}
{{- $cluster := false -}}
{{- if $shard.clusterResources -}}
{{- $cluster = true -}}
{{- $owners = append $owners $shard.name -}}
{{- end -}}
{{- $override := dig "azure" "auth" dict $shard -}}
{{- $auth := mergeOverwrite (deepCopy $.Values.azure.auth) (deepCopy $override) -}}
{{- $own := not (empty $override) -}}
{{- $account := include "aml.serviceAccountName" $ -}}
{{- if $own -}}
{{- $account = printf "%s-%s" $account $shard.name -}}
{{- end -}}
{{- $shardReplicas := ternary $shard.replicas $replicas (hasKey $shard "replicas") -}}
{{- if and (not $.Values.ha.enabled) (gt (int $shardReplicas) 1) -}}
{{- fail (printf "%s: replicas %v needs ha.enabled (without peering each replica would reconcile the shard's resources)" $where $shardReplicas) -}}
{{- end -}}
{{- $items = append $items (dict "name" (printf "%s-%s" (include "aml.fullname" $) $shard.name) "shard" $shard.name "namespaceSelector" $shard.namespaceSelector "clusterResources" $cluster "serviceAccountName" $account "ownServiceAccount" $own "auth" $auth "replicas" $shardReplicas "resources" (ternary $shard.resources $.Values.resources (hasKey $shard "resources")) "peering" (printf "%s-%s" $.Values.ha.peeringName $shard.name)) -}}
{{- end -}}
{{- if ne (len $owners) 1 -}}
{{- fail (printf "shards: exactly one shard must have clusterResources: true (it reconciles the cluster-scoped MLRoles); found %d%s" (len $owners) (ternary (printf " (%s)" (join ", " $owners)) "" (gt (len $owners) 0))) -}}
{{- end -}}
{{- end -}}
{{- dict "items" $items | toJson -}}
{{- end -}}

{{/*
The ServiceAccounts the Deployments run as, as JSON {"items": [{name, auth, shard}]},
each once: the chart's (unless every shard has its own identity), then each shard's that
overrides the Azure identity.
*/}}
{{- define "aml.serviceAccounts" -}}
{{- $instances := (include "aml.instances" . | fromJson).items -}}
{{- $items := list -}}
{{- range $instances -}}
{{- if and (not .ownServiceAccount) (not $items) -}}
{{- $items = append $items (dict "name" .serviceAccountName "auth" $.Values.azure.auth "shard" "") -}}
{{- end -}}
{{- end -}}
{{- range $instances -}}
{{- if .ownServiceAccount -}}
{{- $items = append $items (dict "name" .serviceAccountName "auth" .auth "shard" .shard) -}}
{{- end -}}
{{- end -}}
{{- dict "items" $items | toJson -}}
{{- end -}}

{{/* An instance's selector labels (the root context as "root", the instance as "instance"). */}}
{{- define "aml.instance.selectorLabels" -}}
{{ include "aml.selectorLabels" .root }}
{{- with .instance.shard }}
{{ include "aml.shardLabel" $.root }}: {{ . }}
{{- end -}}
{{- end -}}

{{/*
The rules on service accounts and credential Secrets: cluster-wide in the ClusterRole, or
in a Role per namespace when operator.namespaces lists plain names.
*/}}
{{- define "aml.namespacedRules" -}}
# Annotate the service accounts a WorkloadIdentity federates; create and delete the
# ones it is asked to create.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "patch", "delete"]
# Credential Secrets of servicePrincipal WorkloadIdentities: the operator writes the
# certificate (or client secret) it issues, replaces it on rotation and deletes it with
# the WorkloadIdentity. It reads only the Secrets it names (get, never list or watch)
# and touches none that lack its owner label.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}

{{/*
The Azure client id of an aml.instances or aml.serviceAccounts item (shard, auth), required.
*/}}
{{- define "aml.clientId" -}}
{{- required (printf "azure.auth.clientId is required%s" (ternary (printf " (or shards[].azure.auth.clientId of shard %s)" .shard) "" (ne .shard ""))) .auth.clientId -}}
{{- end -}}
