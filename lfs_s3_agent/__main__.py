"""Entry point for ``python -m lfs_s3_agent``."""

import os
import sys

from lfs_s3_agent.cli import main

if __name__ == "__main__":
    status = main()
    if sys.argv[1:2] == ["serve"]:
        # git-lfs waits for every agent to exit: replies are flushed and temporary files gone, so skip the
        # interpreter's teardown (~10 ms per agent).
        import logging

        logging.shutdown()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
