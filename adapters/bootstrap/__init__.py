"""The composition root: everything the CLI and the Lambda handlers run is built here, from
:class:`adapters.settings.Settings` (clients with explicit botocore configuration, the order
service, view stores, the relay, the indexer, consumers and projection workers)."""
