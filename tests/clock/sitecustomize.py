"""`make test-dates`: every Python process of a test run sees its clock moved by LAKEHOUSE_TEST_CLOCK_OFFSET seconds.

Python imports `sitecustomize` at start-up from PYTHONPATH, so pytest and every script a test starts travel by
the same offset (fixed once per run, so they all agree, and a run started at 23:59:30 crosses midnight). The
clock keeps ticking. Only Python's clock moves: Kafka's C client, the broker and MariaDB keep the real one.

beam_orchestrator.py keeps the real clock: Beam's runner starts a gRPC server, and gRPC's C core never finishes
starting under a moved Python clock (its waits mix the two clocks). So do the Beam worker processes it starts
(multi_processing: they inherit this environment, and Beam hands them its control endpoint in one).
"""

import os
import sys
import time

_offset = os.environ.get("LAKEHOUSE_TEST_CLOCK_OFFSET")
_beam_process = sys.argv[0].endswith("beam_orchestrator.py") or "CONTROL_API_SERVICE_DESCRIPTOR" in os.environ
if _offset and not _beam_process:
    import time_machine

    time_machine.travel(time.time() + float(_offset), tick=True).start()
