"""The pure delivery core: domain events, aggregates, the retry policy, ports and services."""
