"""Chat: hybrid retrieval, cited answers, conversations, feedback and its review."""
