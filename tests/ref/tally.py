"""The pass/fail tally of a reference test script: one line per check ("ok   ..." or "FAIL ..."),
then the summary line scripts/test.sh adds up, "<name>: N passed, M failed", and the exit code."""
import sys


class Tally:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
