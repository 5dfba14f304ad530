from pathlib import Path

from sandbox_kernel.vm.timezone import host_timezone, tzif_rule


def test_a_zone_name_becomes_its_posix_rule() -> None:
    assert host_timezone({"TZ": "Europe/Berlin"}) == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert host_timezone({"TZ": ":Asia/Kolkata"}) == "IST-5:30"


def test_posix_rules_pass_and_anything_else_is_dropped() -> None:
    assert host_timezone({"TZ": "EST5EDT,M3.2.0,M11.1.0"}) == "EST5EDT,M3.2.0,M11.1.0"
    assert host_timezone({"TZ": "<+0530>-5:30"}) == "<+0530>-5:30"
    for junk in ("../../etc/passwd", "bad tz; rm", "x" * 100, "No/Such_Zone"):
        assert host_timezone({"TZ": junk}) == ""


def test_without_tz_the_host_s_localtime_file_decides() -> None:
    assert host_timezone({}) == tzif_rule(Path("/etc/localtime"))


def test_files_that_are_not_tzif_have_no_rule(tmp_path: Path) -> None:
    plain = tmp_path / "zone"
    plain.write_bytes(b"not a zone file\nUTC0\n")
    assert tzif_rule(plain) == ""
    assert tzif_rule(tmp_path / "absent") == ""
