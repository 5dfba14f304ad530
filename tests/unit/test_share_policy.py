"""Which folders may be shared with the VM."""

from pathlib import Path

from sandbox_kernel.share.policy import DEFAULT_EXCLUDES, decide


def test_a_project_folder_is_shared(tmp_path: Path) -> None:
    home = tmp_path / "home" / "ann"
    (home / "project").mkdir(parents=True)
    decision = decide(home / "project" / ".." / "project", home)
    assert decision.share and decision.folder == home / "project" and not decision.reason


def test_home_its_parents_and_the_root_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home" / "ann"
    home.mkdir(parents=True)
    for folder, why in ((home, "home folder"), (home.parent, "holds your home"),
                        (tmp_path, "holds your home"), (Path("/"), "root of the file system")):
        decision = decide(folder, home)
        assert not decision.share and why in decision.reason and str(folder) in decision.reason


def test_a_symlink_to_home_is_refused_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "alias").symlink_to(home)
    assert not decide(tmp_path / "alias", home).share


def test_credential_folders_and_non_folders_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh" / "keys").mkdir(parents=True)
    (home / "notes.txt").write_text("")
    assert "inside .ssh" in decide(home / ".ssh" / "keys", home).reason
    assert "not a folder" in decide(home / "notes.txt", home).reason
    assert "not a folder" in decide(home / "missing", home).reason


def test_default_excludes_cover_the_usual_secrets() -> None:
    for name in (".ssh", ".gnupg", ".aws", ".env", "*.pem", "*.key", "id_rsa*", ".netrc",
                 ".git-credentials", ".pypirc", ".docker", ".kube"):
        assert name in DEFAULT_EXCLUDES
