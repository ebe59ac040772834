"""Term statistics: chunks of generation 0 ("none yet") are never counted as searchable.

The first definition of the chunk triggers and the recount (0003) counted a chunk of
generation 0 of a document whose active_generation was 0, which search never returns.
The functions are redefined from 0003 (fixed there too) and the counts rebuilt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _statistics_migration() -> ModuleType:
    path = Path(__file__).with_name("0003_search_term_statistics.py")
    spec = importlib.util.spec_from_file_location("quorum_migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    _statistics_migration().create_counting_functions()
    op.execute("SELECT quorum_recount_term_statistics()")


def downgrade() -> None:
    pass  # the fixed functions are the ones 0003 defines now; nothing to undo
