"""Kubernetes I/O: service accounts, Secrets and events, through the kubernetes client."""
