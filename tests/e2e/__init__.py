"""End-to-end harness: native rig, e2e table, demo and bench."""
