"""Which permissions open each page: any one of them. The router lists a page only for
holders, and the page's fragments and dialogs re-check them (ui.auth_ui.recheck_account)."""

INGESTION_HUB = ("ingest_documents", "read_documents", "transcribe_audio")
TRANSCRIPTS = ("read_transcripts",)
ACTION_ITEMS = ("read_transcripts",)
CHAT = ("use_chat",)
ADMIN = ("manage_users", "manage_roles", "review_feedback", "view_jobs", "view_audit_log")
