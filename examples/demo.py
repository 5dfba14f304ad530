"""``make demo``: runs examples/quickstart.ipynb through ``jupyter execute`` on the sandbox
kernel and prints what each cell showed."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def describe(output: dict[str, object]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        return str(output["text"]).rstrip()
    if kind == "error":
        return f"{output['ename']}: {output['evalue']}"
    data: dict[str, object] = output.get("data", {})  # type: ignore[assignment]
    rich = [m for m in data if m != "text/plain"]
    text = str(data.get("text/plain", "")).rstrip()
    return f"{text}  [{', '.join(rich)}]" if rich else text


def main() -> int:
    jupyter = Path(sys.executable).parent / "jupyter"
    with tempfile.TemporaryDirectory() as tmp:
        notebook = Path(tmp) / EXAMPLE.name
        shutil.copy(EXAMPLE, notebook)
        started = time.monotonic()
        proc = subprocess.run([str(jupyter), "execute", "--inplace",
                               "--kernel_name=sandbox-python", str(notebook)], check=False)
        if proc.returncode != 0:
            return proc.returncode
        nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
    print(f"\nRan {EXAMPLE.name} in the sandbox VM in {time.monotonic() - started:.1f} s:\n")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print("\n".join(">>> " + line for line in cell.source.splitlines()))
        for output in cell.outputs:
            print(describe(output))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
