"""Placeholder: the OpenAI-compatible test server and its fixtures are being written."""
