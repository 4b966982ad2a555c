"""Personal data: retention of message text and the jobs that enforce it."""
