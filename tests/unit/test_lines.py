from sandbox_kernel.lines import LineSplitter


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


def test_an_overlong_line_is_reported_before_its_end_arrives() -> None:
    splitter = LineSplitter(limit=10)
    assert lines_of(splitter, b"short\nalso", b" fine\n", b"x" * 25) == [
        b"short\n", b"also fine\n", None]
    assert lines_of(splitter, b"x" * 25, b"yyy\nok\n") == [b"ok\n"]


def test_a_whole_line_over_the_limit_in_one_read_is_dropped_too() -> None:
    splitter = LineSplitter(limit=10)
    assert lines_of(splitter, b"0123456789\n0123456789a\nok\n") == [
        b"0123456789\n", None, b"ok\n"]
    assert lines_of(splitter, b"01234", b"56789a\nok\n") == [None, b"ok\n"]
