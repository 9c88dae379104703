"""Test harness shared by the test suites (servers, clients, fresh tables)."""
