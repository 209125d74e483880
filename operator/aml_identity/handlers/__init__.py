"""kopf registrations only: parse the body, call reconcile, patch status."""
