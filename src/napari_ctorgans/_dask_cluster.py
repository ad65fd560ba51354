"""The local Dask cluster of a cohort run: TLS with temporary credentials, and no HTTP port.

A plain :class:`distributed.LocalCluster` listens on loopback without authentication, so any local user can connect
and run code on its workers, and its scheduler and workers serve HTTP routes (``/health``, ``/metrics``, the
JSON API, ...) even with ``dashboard_address=None``. The cluster made here:

* speaks ``tls://`` with a key and self-signed certificate made in memory for this run
  (:meth:`distributed.security.Security.temporary`): a client must present a certificate signed by that key,
  which only this process and its worker processes hold, so another process (or another user) cannot connect;
* opens no HTTP port: the scheduler and workers build their HTTP server (``distributed`` needs the object) and
  close its listening socket in the same call, before their event loop can accept a connection.

Imported only when a local cohort cluster starts (``distributed`` is heavy).
"""

from __future__ import annotations

import logging
import os

from distributed import Nanny, Scheduler, SpecCluster, Worker
from distributed.security import Security

__all__ = ["NoHTTPScheduler", "NoHTTPWorker", "secure_local_cluster"]

#: one thread per worker for every numerical library: the workers are single-threaded processes
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class NoHTTPScheduler(Scheduler):
    """A scheduler whose HTTP server never listens."""

    def start_http_server(self, *args, **kwargs):  # noqa: D102 - see the module docstring
        super().start_http_server(*args, **kwargs)
        self.http_server.stop()  # closes the listening sockets; the event loop has not run in between


class NoHTTPWorker(Worker):
    """A worker whose HTTP server never listens."""

    def start_http_server(self, *args, **kwargs):  # noqa: D102 - see the module docstring
        super().start_http_server(*args, **kwargs)
        self.http_server.stop()


def secure_local_cluster(n_workers: int | None = None, memory_limit: str | float | None = "auto",
                         *, security: Security | None = None) -> SpecCluster:
    """Start a local cluster that only this process can reach and that serves no HTTP.

    Parameters
    ----------
    n_workers : int, optional
        Number of single-threaded worker processes (default: one per core).
    memory_limit : str or float, optional
        Memory per worker (``"4GB"``); ``"auto"`` splits the machine's memory evenly among the workers.
    security : distributed.security.Security, optional
        The credentials; default: new temporary ones (:meth:`Security.temporary`, needs ``cryptography``).

    Returns
    -------
    distributed.SpecCluster
        The running cluster; ``Client(cluster)`` connects with its credentials (``cluster.security``). Close it
        (or use it as a context manager) when done.
    """
    from distributed.worker_memory import parse_memory_limit

    n = n_workers or max(os.cpu_count() or 1, 1)
    security = Security.temporary() if security is None else security
    limit = parse_memory_limit(memory_limit, 1, n, logger=logging.getLogger(__name__))
    common = {"host": "127.0.0.1", "protocol": "tls://", "security": security, "dashboard": False,
              "dashboard_address": None}
    # a random loopback port for the HTTP server that is closed at once (not 8787, where another may listen)
    scheduler = {"cls": NoHTTPScheduler, "options": {**common, "port": 0, "dashboard_address": "127.0.0.1:0"}}
    worker = {"cls": Nanny, "options": {**common, "nthreads": 1, "memory_limit": limit, "env": dict(WORKER_ENV),
                                        "worker_class": NoHTTPWorker, "silence_logs": logging.WARN}}
    return SpecCluster(scheduler=scheduler, workers={i: worker for i in range(n)}, worker=worker,
                       security=security, silence_logs=logging.WARN)
