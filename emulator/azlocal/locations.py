"""Azure's public-cloud regions, and ARM's check of a resource's location.

REGIONS is data, not logic: every `regionType: Physical` entry of ARM's Subscriptions -
List Locations answer (`az account list-locations`), as cached by Microsoft's
Azure/terraform-azurerm-avm-utl-regions (modules/cached-data/locations.tf.json, commit
e9d62409c6fcc5554b60dd79cd60f55b344ad2f0, 2026-03-12). Logical regions ("europe",
"global", the "(Stage)" entries) are left out: resources cannot be placed in them.
Azure checks a location against each resource type's own registered regions (a subset of
these); azlocal accepts every physical region for every type.
"""

from __future__ import annotations

from .errors import ArmError

# (name, displayName), sorted by name as the cached file keeps them.
REGIONS: tuple[tuple[str, str], ...] = (
    ("australiacentral", "Australia Central"),
    ("australiacentral2", "Australia Central 2"),
    ("australiaeast", "Australia East"),
    ("australiasoutheast", "Australia Southeast"),
    ("austriaeast", "Austria East"),
    ("belgiumcentral", "Belgium Central"),
    ("brazilsouth", "Brazil South"),
    ("brazilsoutheast", "Brazil Southeast"),
    ("canadacentral", "Canada Central"),
    ("canadaeast", "Canada East"),
    ("centralindia", "Central India"),
    ("centralus", "Central US"),
    ("centraluseuap", "Central US EUAP"),
    ("chilecentral", "Chile Central"),
    ("denmarkeast", "Denmark East"),
    ("eastasia", "East Asia"),
    ("eastus", "East US"),
    ("eastus2", "East US 2"),
    ("eastus2euap", "East US 2 EUAP"),
    ("eastusstg", "East US STG"),
    ("francecentral", "France Central"),
    ("francesouth", "France South"),
    ("germanynorth", "Germany North"),
    ("germanywestcentral", "Germany West Central"),
    ("indonesiacentral", "Indonesia Central"),
    ("israelcentral", "Israel Central"),
    ("italynorth", "Italy North"),
    ("japaneast", "Japan East"),
    ("japanwest", "Japan West"),
    ("jioindiacentral", "Jio India Central"),
    ("jioindiawest", "Jio India West"),
    ("koreacentral", "Korea Central"),
    ("koreasouth", "Korea South"),
    ("malaysiawest", "Malaysia West"),
    ("mexicocentral", "Mexico Central"),
    ("newzealandnorth", "New Zealand North"),
    ("northcentralus", "North Central US"),
    ("northeurope", "North Europe"),
    ("norwayeast", "Norway East"),
    ("norwaywest", "Norway West"),
    ("polandcentral", "Poland Central"),
    ("qatarcentral", "Qatar Central"),
    ("southafricanorth", "South Africa North"),
    ("southafricawest", "South Africa West"),
    ("southcentralus", "South Central US"),
    ("southcentralusstg", "South Central US STG"),
    ("southeastasia", "Southeast Asia"),
    ("southindia", "South India"),
    ("spaincentral", "Spain Central"),
    ("swedencentral", "Sweden Central"),
    ("switzerlandnorth", "Switzerland North"),
    ("switzerlandwest", "Switzerland West"),
    ("uaecentral", "UAE Central"),
    ("uaenorth", "UAE North"),
    ("uksouth", "UK South"),
    ("ukwest", "UK West"),
    ("westcentralus", "West Central US"),
    ("westeurope", "West Europe"),
    ("westindia", "West India"),
    ("westus", "West US"),
    ("westus2", "West US 2"),
    ("westus3", "West US 3"),
)

_BY_KEY = {
    _key: name for name, display in REGIONS for _key in (name, display.replace(" ", "").lower())
}


def canonical(location: str) -> str | None:
    """The region's name for a name or display name ("West Europe" -> "westeurope"), as ARM
    normalizes it (case and spaces ignored), or None for an unknown location."""
    return _BY_KEY.get(location.replace(" ", "").lower())


def require_location(location: str, resource_type: str) -> str:
    """The region's name, or ARM's 400 LocationNotAvailableForResourceType.

    Wording as ARM answers it (quoted in Azure/azure-rest-api-specs#8577 and
    Azure/pcs-cli#522): "The provided location '<location>' is not available for resource
    type '<type>'. List of available regions for the resource type is '<a,b,...>'."
    """
    name = canonical(location)
    if name is None:
        available = ",".join(n for n, _ in REGIONS)
        raise ArmError(
            400,
            "LocationNotAvailableForResourceType",
            f"The provided location '{location}' is not available for resource type "
            f"'{resource_type}'. List of available regions for the resource type is "
            f"'{available}'.",
        )
    return name
