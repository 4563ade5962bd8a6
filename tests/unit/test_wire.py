import io
import json

import pytest

from lfs_s3_agent.errors import BadRequest
from lfs_s3_agent.protocol.framing import LineReader, LineWriter, decode_line


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
def test_decode_line_rejects_with_reason(line: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        decode_line(line)


def test_decode_line_returns_object() -> None:
    assert decode_line(b'{"event":"terminate"}') == {"event": "terminate"}


def test_reader_skips_blank_lines_and_signals_eof() -> None:
    reader = LineReader(io.BytesIO(b'\n  \n{"a":1}\r\n{"b":2}'))
    assert reader.read() == b'{"a":1}'
    assert reader.read() == b'{"b":2}'  # last line without newline still counts
    assert reader.read() is None


def test_reader_drops_an_oversized_line_and_goes_on() -> None:
    reader = LineReader(io.BytesIO(b"x" * 100 + b"\n" + b'{"ok":1}\n'), max_line=16)
    with pytest.raises(BadRequest, match="longer than 16 bytes"):
        reader.read()
    assert reader.read() == b'{"ok":1}'


def test_writer_emits_one_compact_flushed_line() -> None:
    class Recorder(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = Recorder()
    LineWriter(out).write({"event": "progress", "oid": "ab", "bytesSoFar": 1, "bytesSinceLast": 1, "é": "ü"})
    data = out.getvalue()
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert b" " not in data  # compact: git-lfs reads exactly one line per message
    assert json.loads(data)["é"] == "ü"
    assert out.flushes == 1
