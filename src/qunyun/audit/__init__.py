"""The audit log: who did what, when, and from where — for logins and every mutation."""
