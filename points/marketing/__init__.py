"""Marketing measurement: campaign holdouts compared with their treated customers.

- :mod:`points.marketing.stats`: the small statistics (Welch's t interval), standard library only;
- :mod:`points.marketing.uplift`: a campaign's report from per-customer outcomes (pure);
- :mod:`points.marketing.campaign_data`: reading those outcomes from the ledger database.

See docs/marketing.md for how an analyst reads the report.
"""
