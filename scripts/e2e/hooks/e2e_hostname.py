"""`make e2e` only: [core] hostname_callable for processes on one machine that must tell apart.

Each Celery worker of the native run gets E2E_HOSTNAME (worker-1, worker-2); the task instances
it runs record that name as their hostname, so the e2e run can see which worker ran which try.
"""

import os
import socket


def hostname() -> str:
    return os.environ.get("E2E_HOSTNAME") or socket.getfqdn()
