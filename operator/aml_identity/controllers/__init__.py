"""Per-kind workflows: observe Azure and Kubernetes, plan with the pure planners, act,
and return an Outcome. No kopf here: the handlers turn Outcomes into status, events and
retries, so the same workflows serve `aml-identity run` and `aml-identity plan`."""
