"""lfs-s3-agent: a Git LFS custom transfer agent that keeps LFS objects in S3.

This package's top level imports nothing heavy: git-lfs starts several agent
processes one after another and waits for each one's init reply, so boto3 and
pydantic are imported only where a module needs them.
"""

__version__ = "0.1.0"
