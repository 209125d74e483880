"""Thin adapters over the Azure SDK clients, and the one error-classification table."""
