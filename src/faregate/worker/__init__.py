"""Background jobs: run inside `faregate serve` by default, and as `faregate worker`."""
