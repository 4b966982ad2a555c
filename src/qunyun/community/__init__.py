"""Community positioning (M1) and the playbook a community's groups are created from (M2)."""
