"""Quorum core: every piece of logic that pages and workers share."""
