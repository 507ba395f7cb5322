"""Handlers per resource: parse the request, call the store, shape the response."""
