"""The custom resources' API: pydantic models for spec and status, and CRD generation.

This is the lowest layer: it imports nothing else from the operator and does no I/O.
"""

GROUP = "identity.aml.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
