"""The earning pipeline's database side: per-customer rule state, profiles, earning records.

``EarningService.process`` turns one consumed batch into ledger operations and state changes,
all in one database transaction (see ``points.earning.service``).
"""

from points.earning.service import BatchOutcome, EarningService

__all__ = ["BatchOutcome", "EarningService"]
