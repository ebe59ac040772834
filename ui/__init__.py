"""UI helpers the routed pages share: sign-in plumbing, session keys, common widgets. UI only."""
