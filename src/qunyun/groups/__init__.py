"""Groups: listing and editing within the staff member's scope, members, history, assignments."""
