"""Unit tests of the order domain, its service and the public contract (no servers)."""
