from sandbox_kernel.guest.outputs import FLUSH_BYTES, LineSplitter, StreamChunker


def collect() -> tuple[list[str], StreamChunker]:
    out: list[str] = []
    return out, StreamChunker("stdout", lambda name, text: out.append(text))


def test_multibyte_characters_split_across_reads_stay_whole() -> None:
    out, chunker = collect()
    data = "héllo → 世界 🎉".encode()
    for i in range(len(data)):
        chunker.feed(data[i:i + 1])
    chunker.flush()
    assert "".join(out) == "héllo → 世界 🎉"
    assert "\ufffd" not in "".join(out)


def test_large_output_is_cut_into_bounded_chunks() -> None:
    out, chunker = collect()
    chunker.feed(b"x" * (3 * FLUSH_BYTES + 5))
    chunker.flush()
    assert all(len(c) <= FLUSH_BYTES for c in out)
    assert sum(map(len, out)) == 3 * FLUSH_BYTES + 5


def test_small_output_waits_for_the_interval() -> None:
    out, chunker = collect()
    chunker.feed(b"abc")
    assert out == []
    due = chunker.due_in()
    assert due is not None and 0 < due <= 0.05


def lines_of(splitter: LineSplitter, *reads: bytes) -> list[bytes | None]:
    return [None if line is None else bytes(line)
            for data in reads for line in splitter.feed(data)]


def test_lines_come_out_whole_however_the_reads_cut_them() -> None:
    splitter = LineSplitter(limit=100)
    assert lines_of(splitter, b'{"a":1}\n{"b"', b":2}\n", b"\n", b'{"c":3}\n{"d') == [
        b'{"a":1}\n', b'{"b":2}\n', b"\n", b'{"c":3}\n']
    assert lines_of(splitter, b'":4}\n') == [b'{"d":4}\n']


def test_an_overlong_line_is_dropped_and_the_next_one_kept() -> None:
    splitter = LineSplitter(limit=10)
    assert lines_of(splitter, b"x" * 8, b"y" * 8, b"z" * 50, b"zz\nok\n") == [None, b"ok\n"]
    assert lines_of(splitter, b"fine\n") == [b"fine\n"]
