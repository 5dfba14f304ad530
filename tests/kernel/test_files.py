"""The notebook's folder through the installed kernel, as Jupyter starts it: in the notebook's
folder, under nbclient and `jupyter execute`; write-back and restart."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from sandbox_kernel.kernel.app import CONFIG_FILE
from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME, run, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

CELLS = [
    "import csv, glob\nrows = list(csv.DictReader(open('data.csv')))\nprint(len(rows), rows[0])",
    "print(sorted(glob.glob('*.py')), open('data/more.txt').read())",
    "import mylib\n%run helper.py\nprint(mylib.hello(), ran_helper)",
    "open('notes.txt', 'w').write('scratch')\nprint(open('notes.txt').read())",
]


def _project(folder: Path) -> Path:
    (folder / "data").mkdir()
    (folder / "data.csv").write_text("name,score\nada,3\ngrace,5\n")
    (folder / "data" / "more.txt").write_text("more data")
    (folder / "mylib.py").write_text("def hello():\n    return 'hello from mylib'\n")
    (folder / "helper.py").write_text("ran_helper = 'helper ran'\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbformat.write(nb, folder / "analysis.ipynb")
    return folder / "analysis.ipynb"


def _check(path: Path, folder: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    texts = ["".join(o.get("text", "") for o in cell.outputs) for cell in nb.cells]
    assert texts == ["2 {'name': 'ada', 'score': '3'}\n",
                     "['helper.py', 'mylib.py'] more data\n",
                     "hello from mylib helper ran\n",
                     "scratch\n"], texts
    assert not (folder / "notes.txt").exists()  # a write in the VM stays there


def test_a_notebook_reads_what_is_beside_it_under_nbclient(tmp_path: Path) -> None:
    notebook = _project(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=120, startup_timeout=BOOT_TIMEOUT,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, notebook)
    _check(notebook, tmp_path)


def test_a_notebook_reads_what_is_beside_it_under_jupyter_execute(tmp_path: Path) -> None:
    notebook = _project(tmp_path)
    jupyter = Path(sys.executable).parent / "jupyter"
    proc = subprocess.run([str(jupyter), "execute", "--inplace", f"--kernel_name={KERNEL_NAME}",
                           "--timeout=120", f"--startup_timeout={BOOT_TIMEOUT}", str(notebook)],
                          cwd="/", capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(notebook, tmp_path)


def test_written_back_results_outlive_a_restart_and_the_vm_s_own_writes_do_not(
        tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / f"{CONFIG_FILE}.py").write_text("c.SandboxKernel.writable = ['results']\n")
    project = tmp_path / "project"
    project.mkdir()
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, "JUPYTER_CONFIG_DIR": str(config)}, cwd=str(project))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=BOOT_TIMEOUT)
        reply, _ = run(kc, "open('results/table.csv', 'w').write('a,b\\n')\n"
                           "open('scratch.txt', 'w').write('x')", timeout=BOOT_TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert (project / "results" / "table.csv").read_text() == "a,b\n"
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=BOOT_TIMEOUT)
        reply, msgs = run(kc, "import os\nprint(os.getcwd(), open('results/table.csv').read(),"
                              " os.path.exists('scratch.txt'))", timeout=BOOT_TIMEOUT)
        assert stdout_of(msgs) == "/home/user/project a,b\n False\n", (reply, msgs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
