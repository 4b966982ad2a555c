"""The webhook inbox: verified platform requests stored as they came, then processed by a job."""
