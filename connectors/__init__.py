"""Groundwire's built-in connectors. Each is a plugin that imports only the public ``groundwire`` API."""
