from sandbox_kernel.guest.fd_output import FLUSH_BYTES, StreamChunker


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
