"""azlocal: a local, stateful Azure for tests and demos.

HTTPS emulation of the ARM (Microsoft.ManagedIdentity, Microsoft.Authorization,
resource groups, Microsoft.MachineLearningServices) and Entra token endpoints the
operator and its users' workloads call, with RBAC evaluated on every request. The
official Azure SDK clients talk to it unchanged, configured only by endpoint and CA.
See docs/azlocal.md.
"""

__version__ = "0.1.0.dev0"
