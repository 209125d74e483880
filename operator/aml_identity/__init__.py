"""aml-identity-operator: Azure identities and RBAC for Azure ML, kept by Kubernetes."""

__version__ = "0.1.0.dev0"
