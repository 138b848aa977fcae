"""Producing the raw events and, without ksqlDB, what ksqlDB would derive from them.

  events      the seeded transaction-event generator and the event contract
  producer    kafka_producer.py: the send loop (and --derive)
  derive      the ksqlDB stand-in: derived streams and table changelogs computed from the events
"""
