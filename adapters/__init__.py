"""Technologies behind the ports: the DynamoDB event store, the local backend, the CLI."""
