"""Domain logic. Services take a session and collaborators, flush, and never commit."""
