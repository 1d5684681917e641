"""Local development stack: a real Apache Kafka broker and a project-owned PostgreSQL cluster.

Run ``python -m devstack up|down|status|env`` (or the ``points-stack`` console script).
See docs/local-stack.md.
"""
