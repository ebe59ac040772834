"""Dramatiq workers: `dramatiq workers` starts them. Import workers.broker first."""
