"""kopf registrations only: parse the body, run the kind's workflow, write the Outcome
into status, events and retries. Built by `build_registry(settings)` so intervals come
from configuration."""
