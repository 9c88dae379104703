"""Integration tests against real servers (DynamoDB Local, started once per session)."""
