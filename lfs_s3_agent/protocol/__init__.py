"""The protocols, in one place: framing, git-lfs's messages, and the agent <-> worker messages.

- ``framing``: one JSON object per line, read tolerantly, written flushed (standard library).
- ``lfs``: git-lfs's init handshake and the event names (standard library: the init reply
  must come before anything heavy is imported).
- ``messages``: git-lfs's transfer requests and our events as typed pydantic models.
- ``worker``: what the agents and the shared worker say to each other, as typed frames that a
  git-lfs request line can never imitate (requests travel inside a frame, as a string).

Nothing here imports the S3 layer or the stores.
"""
