"""Pure decisions: plans, names, conditions and policies. No I/O; the clock is injected."""
