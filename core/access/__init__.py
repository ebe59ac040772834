"""Access: accounts and sign-in rules, roles and permissions, the audit log."""
