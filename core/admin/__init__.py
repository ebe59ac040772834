"""Admin: users and roles, the job monitor, usage analytics and the home dashboard."""
