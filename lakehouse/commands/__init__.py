"""The command line: each module is one script's parser and main (the scripts at the repository root are shims).

  produce      kafka_producer.py            export       export_to_data_lake.py    retention    data_retention.py
  land         kafka_consumer_datalake.py   sync         sync_to_mysql.py          permissions  permissions_manager.py
  warehouse    kafka_consumer_warehouse.py  config       data_lake_config.py       feeds        manage_feeds.py
  orchestrate  beam_orchestrator.py
  dispatch     `lakehouse COMMAND ...`: the installed command, whose subcommands are the modules above
"""
