"""Implementations of the core's ports: stores, transports, signer, clock, ids."""
