"""Groundwire's built-in policy plugins. Each imports only the public ``groundwire`` API."""
