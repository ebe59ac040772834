"""Reliability and security: real processes killed and restarted, hostile input, access rules."""
