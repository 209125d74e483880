"""Azure RBAC operations: the catalog of what each resource provider publishes, and the
one matcher of role-definition patterns (actions, notActions, dataActions,
notDataActions) against operations, with Azure's wildcard semantics.

Pure and dependency-free: the operator (admission, role summaries, explain-role) and
azlocal (role-definition validation, authorization) both use it, so the emulator and
the operator can never disagree about what a pattern means.
"""

from azure_operations.catalog import (
    Catalog,
    Finding,
    Problem,
    Resolution,
    VerbCounts,
    catalog,
    resource_type_and_verb,
)
from azure_operations.matching import matches, provider_of

__all__ = [
    "Catalog",
    "Finding",
    "Problem",
    "Resolution",
    "VerbCounts",
    "catalog",
    "matches",
    "provider_of",
    "resource_type_and_verb",
]
