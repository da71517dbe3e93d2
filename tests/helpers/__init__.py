"""Builders and support shared by the test modules (not collected: no test lives here)."""
