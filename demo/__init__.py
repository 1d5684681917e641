"""`make demo`: the exchange end to end on the local stack."""
