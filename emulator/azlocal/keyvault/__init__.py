"""Azure Key Vault's data plane (certificates, and the secret view of a certificate).

Each vault listens on its own loopback port (see `sites.py`), because the SDK parses
ids such as `https://<vault host>/certificates/<name>/<version>` and checks that the
challenge's resource matches the vault's host.
"""
