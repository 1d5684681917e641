"""Points exchange domain: event contracts, earning rules, the double-entry ledger.

This package knows nothing of Kafka; ``streams/`` feeds it and ``adapters/`` talk to partners.
"""
