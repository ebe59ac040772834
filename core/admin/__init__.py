"""Admin: users and roles, the job monitor, usage analytics and the home dashboard.

Pages and the CLI use the names below; the modules behind them may move.
"""

from core.admin.analytics import UsageAnalytics, usage_analytics
from core.admin.dashboard import HomeOverview, OverviewItem, home_overview
from core.admin.job_monitor import JOB_STATUS_WORDS, JobRow, job_queue_depths, list_jobs, retry_job
from core.admin.roles import (
    RoleSummary,
    create_role,
    delete_role,
    list_roles,
    rename_role,
    set_permission_matrix,
    set_role_permissions,
)
from core.admin.users import (
    DELETED_USER_LABEL,
    DeletedUser,
    UserSummary,
    change_user_role,
    create_user,
    delete_user,
    generate_password,
    list_users,
    reset_password,
    set_user_active,
    unlock_user,
)
from core.platform.jobs import JobKind

__all__ = [
    "DELETED_USER_LABEL",
    "JOB_STATUS_WORDS",
    "DeletedUser",
    "HomeOverview",
    "JobKind",
    "JobRow",
    "OverviewItem",
    "RoleSummary",
    "UsageAnalytics",
    "UserSummary",
    "change_user_role",
    "create_role",
    "create_user",
    "delete_role",
    "delete_user",
    "generate_password",
    "home_overview",
    "job_queue_depths",
    "list_jobs",
    "list_roles",
    "list_users",
    "rename_role",
    "reset_password",
    "retry_job",
    "set_permission_matrix",
    "set_role_permissions",
    "set_user_active",
    "unlock_user",
    "usage_analytics",
]
