"""`make bench`: this agent against s5cmd, boto3 and git-lfs's own file:// transfer on local S3 servers.

Run ``python -m tests.bench.run --help``. No module here is named ``test_*``: pytest does not collect them.
"""
