"""In-memory twins of the services' adapters, for the tests only: one module per twin, each
answering through the same Protocol as the adapter it stands in for. They live here, not in
the services, because only the tests use them: nothing under `services/` imports `tests/`."""
