"""Seed entries `keyVaults: [{name: ...}]` of a resource group: RBAC-authorized vaults."""

from __future__ import annotations

from typing import Any

from azlocal import armids
from azlocal.store import ArmResource, Store

from .model import VAULT_TYPE, VaultData


def add_vault(
    store: Store, group_id: str, entry: dict[str, Any], location: str, now: float
) -> None:
    name = entry["name"]
    vault = ArmResource(
        id=f"{group_id}/providers/{VAULT_TYPE}/{name}",
        type=VAULT_TYPE,
        name=name,
        location=entry.get("location", location),
        tags=dict(entry.get("tags", {})),
        properties={
            "sku": {"family": "A", "name": "standard"},
            "tenantId": store.tenant_id,
            "accessPolicies": [],
            "enableRbacAuthorization": True,
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": 90,
            # Set to https://<host>:<port>/ when azlocal starts (keyvault/sites.py).
            "vaultUri": "",
            "provisioningState": "Succeeded",
        },
        created_at=now,
    )
    store.put(vault)
    store.vaults[armids.norm(vault.id)] = VaultData()
