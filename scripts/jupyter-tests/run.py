"""Run the Jupyter test modules and fail on any failure or skip: "12 of 12, none skipped" is the bar.

Usage: /usr/bin/python3 run.py [module ...]   (default: test_kernel test_clients)
"""

import sys
import unittest

import test_kernel


def main():
    names = sys.argv[1:] or ["test_kernel", "test_clients"]
    suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    problems = []
    if not result.wasSuccessful():
        problems.append(f"{len(result.failures)} failed, {len(result.errors)} errors")
    if result.skipped:
        problems.append(f"{len(result.skipped)} skipped: " + "; ".join(f"{t.id()} ({why})" for t, why in result.skipped))
    if "test_kernel" in names:
        n = unittest.defaultTestLoader.loadTestsFromTestCase(test_kernel.TileLabKernelTests).countTestCases()
        print(f"jupyter_kernel_test: {n} tests in TileLabKernelTests")
        if n != 12:
            problems.append(f"jupyter_kernel_test ran {n} tests, expected 12")
    if problems:
        print("FAILED: " + "; ".join(problems))
        sys.exit(1)
    print("all Jupyter tests passed, none skipped")


if __name__ == "__main__":
    main()
