"""In-memory twins of the services' adapters, behind the same Protocols, for unit tests.

They live here, not in the services, because only the tests use them: nothing under
`services/` imports from `tests/`.
"""
