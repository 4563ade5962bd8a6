"""One JSON line of a process's CPU time, peak memory and S3 requests, for ``make bench``.

Written at exit by agents and the shared worker when ``LFS_S3_STATS_FILE`` is set.
"""

from __future__ import annotations

import json
import os
import resource


def write_stats(path: str, requests: dict[str, int], role: str = "agent") -> None:
    """Append this process's record to ``path`` (one line, so concurrent writers do not mix)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {"pid": os.getpid(), "role": role, "user": usage.ru_utime, "sys": usage.ru_stime,
              "maxrss_kib": usage.ru_maxrss, "requests": requests}
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as exc:
        import logging  # not at the top: the thin relay writes these records too, without logging

        logging.getLogger(__name__).warning("cannot write stats to %s: %s", path, exc)
