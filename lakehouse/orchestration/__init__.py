"""Running the jobs.

  schedule    beam_orchestrator.py's loop: every N minutes or once, no overlapping runs, run history
  pipelines   the Apache Beam pipelines: produce, export, sync, retention
  demo        make demo: the whole pipeline end to end, as a user would run it
"""
