"""Names in azlocal's default seed that tests refer to."""

SUB = "00000000-0000-0000-0000-000000000001"
RG_ML = f"/subscriptions/{SUB}/resourceGroups/rg-ml"
RG_IDENTITIES = "rg-ml-identities"
WORKSPACE = f"{RG_ML}/providers/Microsoft.MachineLearningServices/workspaces/ws-prod"
ENDPOINT = f"{WORKSPACE}/onlineEndpoints/churn-endpoint"
ML_API = "2024-10-01"
