"""`make reliability`: run the whole fault matrix and print its table (also saved to reliability-results/)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.reliability.matrix import SCENARIOS, run_all, table
from tests.s3server import TEST_ENV


def main() -> int:
    # Fake credentials for the local server; nothing from the user's AWS setup is used.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(TEST_ENV, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    started = time.monotonic()
    results = run_all(SCENARIOS)
    text = table(results, SCENARIOS)
    failed = [r for r, s in zip(results, SCENARIOS, strict=True)
              if not r.passed or r.injected == 0
              or (s.expect == "completed") != (r.outcome == "completed")
              or (s.expect != "completed" and not r.outcome.endswith(s.expect))]
    out = Path("reliability-results")
    out.mkdir(exist_ok=True)
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
          f"({time.monotonic() - started:.0f} s; table saved to {out / 'results.md'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
