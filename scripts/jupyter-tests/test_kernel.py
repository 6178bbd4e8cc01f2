"""jupyter_kernel_test for the TileLab kernel: every attribute set, so all 12 tests run and none is skipped.

The samples follow LANGUAGE.md's "jupyter_kernel_test samples" section, run against the workbench language
that `tilelab kernel` serves.

Run: JUPYTER_PATH=<folder holding kernels/tilelab> /usr/bin/python3 -m unittest -v test_kernel
"""

import os
import unittest

import jupyter_kernel_test

# A command that draws a chart (display_data). jupyter_kernel_test wants the MIME type in *every* display_data
# of the cell, and plan shows a table before its chart, so the check is on text/plain, which every TileLab
# bundle carries. TILELAB_DISPLAY_CODE and TILELAB_DISPLAY_MIME override both.
DISPLAY_CODE = os.environ.get("TILELAB_DISPLAY_CODE", "plan synth:tiny-moe")
DISPLAY_MIME = os.environ.get("TILELAB_DISPLAY_MIME", "text/plain")


class TileLabKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = os.environ.get("TILELAB_KERNEL_NAME", "tilelab")
    language_name = "tilelab"
    file_extension = ".tlab"

    code_hello_world = 'print "hello, world"'
    code_stderr = 'print stderr=on "oops"'

    completion_samples = [
        {"text": "pla", "matches": {"placement", "plan"}},
    ]

    complete_code_samples = ["help", 'print "hello, world"', "# just a comment"]
    incomplete_code_samples = ["load synth:tiny-moe \\"]
    invalid_code_samples = ['load "unterminated']

    code_page_something = "?load"

    code_generate_error = "nosuchcommand"

    code_execute_result = [
        {"code": "get threads"},
    ]

    code_display_data = [
        {"code": DISPLAY_CODE, "mime": DISPLAY_MIME},
    ]

    code_history_pattern = "get*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "load"

    code_clear_output = "clear"


if __name__ == "__main__":
    unittest.main(verbosity=2)
