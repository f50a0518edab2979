"""HTTP layer: routing, request parsing and response shapes; no business rules."""
