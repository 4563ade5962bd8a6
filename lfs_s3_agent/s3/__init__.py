"""The S3 layer: the only place that uses boto3/botocore.

- ``client``: the one factory for every S3 client (the LFS store, linked sources, copy
  destinations, doctor's probes), built from one ``ClientSpec``, and ``S3Client``, the wrapper
  every call goes through (translation and retries happen there).
- ``errors``: botocore exceptions translated into ours, as data (code, S3 code, HTTP status,
  transient).
- ``retry``: the one retry policy (attempt budget, backoff).
- ``keys``: the store's key layout, both ways.
- ``listing``: listing a prefix or its unfinished uploads, within a request budget.
- ``transfer``: moving bytes (streamed and multipart uploads, streamed and ranged downloads,
  server-side multipart copies), hashing and checking them on the way.

Importing this package imports no botocore; its modules import it where they use it.
"""
