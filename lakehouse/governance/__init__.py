"""Governing the lake and the warehouse.

  onboarding  manage_feeds.py: add, update, archive feeds (topic, catalog, warehouse table)
  retention   data_retention.py: plan and apply retention, with its audit trail
  permissions permissions_manager.py: per-folder grants in MySQL, check, audit
  status      data_lake_config.py status: lake, warehouse, reconciliation, lag
"""
