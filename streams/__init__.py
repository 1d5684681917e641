"""The faust application: topics, agents and the outbox relay. Thin by design: decode, batch,
call ``points/``, commit, ack. Nothing here opens a database session itself."""
