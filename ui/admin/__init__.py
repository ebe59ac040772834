"""The tabs of the Admin page (pages/admin.py), one module each. UI only."""
