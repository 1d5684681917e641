"""Nudges: event- and timer-triggered messages to customers (docs/rules.md, "Nudges").

Declared in the rule file (:mod:`points.nudges.declarations`), triggered by purchases in the
earning batch (:mod:`points.nudges.triggers`) or by the leader's timer
(:mod:`points.nudges.timers`), decided against consent, quiet hours and caps
(:mod:`points.nudges.policy`), recorded and queued on ``customer.nudges`` through the outbox in
the same transaction (:mod:`points.nudges.store`).
"""
