"""Azure Resource Manager: one dispatcher, providers register their routes."""
