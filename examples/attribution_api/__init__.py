"""The Attribution API, as a runnable example that embeds attribution-webhooks.

Partners, tracked events (touchpoints) and deals credited to partners by an attribution model;
every write publishes its webhook event in the same database transaction. See README.md.
"""
