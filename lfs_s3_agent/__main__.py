"""Entry point for ``python -m lfs_s3_agent``."""

import sys

from lfs_s3_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
