"""Run the e2e tier against a real S3 implementation: Ceph RGW (Debian's radosgw), http then https.

``python -m tests.interop.run [--mode http|https|both] [-- PYTEST_ARGS...]``

For each mode it starts a throwaway one-node cluster (tests/rgw.py), points the e2e tier at it with
the ``LFS_S3_TEST_*`` switch (tests/e2e/conftest.py), runs pytest on tests/e2e and stops the cluster.
Exit status: 0 only when every run passed; pytest's "no tests ran" (5) counts as a failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.rgw import RgwError, RgwServer

ROOT = Path(__file__).resolve().parents[2]


def run_one(https: bool, pytest_args: list[str]) -> int:
    label = "https" if https else "http"
    started = time.monotonic()
    try:
        with RgwServer(https=https) as server:
            print(f"== RGW ({label}) up in {time.monotonic() - started:.1f} s at {server.endpoint}; "
                  f"ops log {server.ops_log}", flush=True)
            env = {**os.environ, **server.env(), **server.test_env(), "LFS_S3_TEST_IMPL": "rgw"}
            # The absolute path also keeps this run out of a `pkill -f "pytest tests/e2e"` run elsewhere.
            cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "e2e"), *pytest_args]
            print(f"== {' '.join(cmd)}", flush=True)
            tests_started = time.monotonic()
            code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
            print(f"== RGW ({label}): pytest exited {code} after {time.monotonic() - tests_started:.0f} s",
                  flush=True)
    except RgwError as exc:
        print(f"== RGW ({label}) failed to start:\n{exc}", file=sys.stderr, flush=True)
        return 1
    print(f"== RGW ({label}) stopped; {time.monotonic() - started:.0f} s in all", flush=True)
    if code < 0:
        print(f"== RGW ({label}): pytest was killed by signal {-code} (from outside this run)", file=sys.stderr,
              flush=True)
    if code == 5:
        print(f"== RGW ({label}): pytest ran no tests: that is a failure here", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("http", "https", "both"), default="both")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    args = parser.parse_args(argv)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the cluster is always stopped and removed.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    modes = {"http": [False], "https": [True], "both": [False, True]}[args.mode]
    results = {("https" if https else "http"): run_one(https, args.pytest_args) for https in modes}
    failed = {mode: code for mode, code in results.items() if code != 0}
    print(f"== interop: {', '.join(f'{m}: exit {c}' for m, c in results.items())}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
