"""Chat: hybrid retrieval, cited answers, a user's chats, feedback and its review.

Pages, workers and other packages use the names below; the modules behind them may move.
"""

from core.chat.answers import Answer, answer_question, ask, regenerate_last_answer
from core.chat.chats import (
    ChatMessageView,
    ChatSummary,
    create_chat,
    delete_chat,
    list_chats,
    list_messages,
    rename_chat,
)
from core.chat.feedback import Feedback, clear_rating, rate_message
from core.chat.feedback_review import (
    FeedbackFilters,
    FeedbackItem,
    export_feedback_csv,
    export_feedback_xlsx,
    feedback_raters,
    list_feedback,
    review_feedback,
)
from core.chat.retrieval import RetrievalFilters, RetrievedChunk, retrieve
from core.chat.sources import Source

__all__ = [
    "Answer",
    "ChatMessageView",
    "ChatSummary",
    "Feedback",
    "FeedbackFilters",
    "FeedbackItem",
    "RetrievalFilters",
    "RetrievedChunk",
    "Source",
    "answer_question",
    "ask",
    "clear_rating",
    "create_chat",
    "delete_chat",
    "export_feedback_csv",
    "export_feedback_xlsx",
    "feedback_raters",
    "list_chats",
    "list_feedback",
    "list_messages",
    "rate_message",
    "regenerate_last_answer",
    "rename_chat",
    "retrieve",
    "review_feedback",
]
