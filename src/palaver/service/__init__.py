"""Use cases: load, decide with the domain, persist state and events in one transaction."""
