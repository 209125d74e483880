"""Microsoft.KeyVault/vaults in ARM: read a vault (its vaultUri is the data plane)."""

from __future__ import annotations

from aiohttp import web

from azlocal.arm.common import NAME, RG, require_resource_group
from azlocal.arm.router import ArmRequest, Router
from azlocal.errors import not_found
from azlocal.keyvault.model import VAULT_TYPE

# Versions of the Microsoft.KeyVault management API (azure-rest-api-specs
# specification/keyvault/resource-manager); not every one is listed.
VAULT_API_VERSIONS = frozenset(
    {
        "2019-09-01",
        "2021-10-01",
        "2022-07-01",
        "2023-02-01",
        "2023-07-01",
        "2024-11-01",
        "2024-12-01-preview",
        "2025-05-01",
    }
)
VAULTS = RG + r"/providers/microsoft\.keyvault/vaults"

router = Router()


@router.add(
    "GET",
    VAULTS + "/" + NAME + "/?$",
    operation="vaults/read",
    action=f"{VAULT_TYPE}/read",
    api_versions=VAULT_API_VERSIONS,
    resource_type="vaults",
)
async def get_vault(req: ArmRequest) -> web.Response:
    require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
    vault = req.ctx.store.get(req.path)
    if vault is None or vault.type.lower() != VAULT_TYPE.lower():
        raise not_found(VAULT_TYPE, req.param("name"), req.param("rg"))
    return web.json_response(vault.to_json())


@router.add(
    "GET",
    VAULTS + "/?$",
    operation="vaults/list",
    action=f"{VAULT_TYPE}/read",
    api_versions=VAULT_API_VERSIONS,
    resource_type="vaults",
)
async def list_vaults(req: ArmRequest) -> web.Response:
    group = require_resource_group(req.ctx, req.param("sub"), req.param("rg"))
    return req.page([v.to_json() for v in req.ctx.store.children(group.id, VAULT_TYPE)])
