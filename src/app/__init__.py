"""The runnable service: HTTP API, delivery worker and command line."""
