"""jupyter_kernel_test's protocol conformance suite against the installed sandbox-python spec."""

import jupyter_kernel_test
import pytest
from jupyter_client.manager import start_new_kernel

from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


class TestSandboxKernelConformance(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "python"
    file_extension = ".py"

    @classmethod
    def setUpClass(cls) -> None:
        cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name,
                                          startup_timeout=BOOT_TIMEOUT)
        # The suite's 15 s budget per request should not include the VM's boot.
        cls.kc.execute_interactive("pass", timeout=BOOT_TIMEOUT)

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import os; os.pa",
         "matches": {"pardir", "path", "pathconf", "pathconf_names", "pathsep"}},
        {"text": "é = 1; é", "matches": {"é"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
    ]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
         "mime": "text/latex"},
        {"code": "from IPython.display import Markdown, display; display(Markdown('*x*'))",
         "mime": "text/markdown"},
        {"code": "from IPython.display import SVG, display; "
                 "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>'))",
         "mime": "image/svg+xml"},
        {"code": "from IPython.display import JSON, display; display(JSON({'a': [1, 2]}))",
         "mime": "application/json"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"
