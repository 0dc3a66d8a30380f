"""In-memory twins of the services' adapters, for the tests only: one module per twin, each
answering through the same Protocol as the adapter it stands in for."""
