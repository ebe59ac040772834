"""Every st.session_state key the UI uses, in one place. Values are ids and strings."""

ACTOR = "quorum_actor"  # core.access.rbac.Actor of the signed-in user
AUTH_STATUS = "authentication_status"  # owned by streamlit-authenticator
AUTH_USERNAME = "username"  # owned by streamlit-authenticator
SIGN_IN_MESSAGE = "quorum_sign_in_message"
SIGN_OUT_REQUESTED = "quorum_sign_out_requested"  # set by the Sign out button; acted on by the next run
SIGN_IN_METHOD = "quorum_sign_in_method"  # "oidc" while signed in with single sign-on (password: AUTH_STATUS)
OIDC_USERNAME = "quorum_oidc_username"  # the Quorum user a single sign-on session is for
OIDC_REFUSED = "quorum_oidc_refused"  # (subject, message): the provider's account Quorum refused, and why
ACTIVE_CHAT_ID = "quorum_active_chat_id"
SELECTED_JOB_ID = "quorum_selected_job_id"  # the recording open on Transcripts & Minutes
OPEN_RECORDING_WIDGET = "quorum_open_recording"  # the "Open a recording" selectbox, synced from SELECTED_JOB_ID
SELECTED_DOCUMENT_ID = "quorum_selected_document_id"
SEEK_SECONDS = "quorum_seek_seconds"
ADMIN_FLASH = "quorum_admin_flash"  # a success message to show after the rerun an admin action caused
ADMIN_NEW_PASSWORD = "quorum_admin_new_password"  # (username, password) to show once after create/reset
TRANSCRIPT_LINES = "quorum_transcript_lines"  # selection of the transcript table (choosing a line seeks)
MINUTES_EDITING = "quorum_minutes_editing"  # job id whose minutes are open in the editor
TRANSCRIPTS_FLASH = "quorum_transcripts_flash"  # a message to show after the rerun a delete or retry caused
HUB_FLASH = "quorum_hub_flash"  # a message to show after the rerun an Ingestion Hub action caused
HUB_UPLOAD_RESULTS = "quorum_hub_upload_results"  # [(status, message)] of the last document upload
CHAT_FILTER_TYPES = "quorum_chat_filter_types"  # document types the chat searches (multiselect)
CHAT_FILTER_DOCUMENTS = "quorum_chat_filter_documents"  # document ids the chat searches (multiselect)
CHAT_FILTER_DATES = "quorum_chat_filter_dates"  # (from, to) upload dates the chat searches
CHAT_FLASH = "quorum_chat_flash"  # a message to show after the rerun a chat action caused
ANSWERS_IN_PROGRESS = "quorum_answers_in_progress"  # {chat id: ui.answer_in_progress.AnswerInProgress}
