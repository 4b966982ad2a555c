"""Staff authentication: passwords, sessions, API tokens, CSRF, and data scope."""
