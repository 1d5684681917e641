"""Points gifts and red packets between customers (docs/gifts.md).

``split`` (pure: shares and claim codes), ``policy`` (settings), ``tables`` (migration 0012),
``desk`` (the operations on the ledger), ``checks`` (what ``verify`` proves about packets).
"""
