"""Staff tasks: work for a person, with an assignee, a due time, reminders, escalation to the
lead and evidence of completion (docs/tasks.md)."""
