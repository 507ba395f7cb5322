"""The conformance gate: every line of the façade contract as an individual raw-HTTP check."""
