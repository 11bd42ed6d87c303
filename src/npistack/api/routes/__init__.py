"""API routes, one module per resource: v1 (the contract), cms (the drop-in registry endpoint),
admin (keys, plans, usage) and ops (health, readiness, metrics)."""
