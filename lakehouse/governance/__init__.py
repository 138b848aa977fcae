"""Governing the lake and the warehouse.

  onboarding    manage_feeds.py: add, update, archive feeds (topic, catalog, warehouse table)
  retention     data_retention.py: plan and apply retention, with its audit trail
  permissions   permissions_manager.py: per-folder grants in MySQL, check, audit
  lake_views    the lake as one user may read it now: a view per feed over the files their grants cover
  sandbox       the locked in-process DuckDB those views are queried in
  query         data_lake_config.py query: the governed read path, its output and its audit
  status        data_lake_config.py status: collects lake, warehouse, reconciliation, lag; renders it as text
  status_json   status --json: the same collection as one JSON document (keys: docs/status.md)
  status_report status --html FILE: the same as a self-contained HTML page
  charts        the inline SVG charts of that page
"""
