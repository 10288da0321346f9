"""minicnn.keep_freed_memory: glibc's malloc asked to keep freed memory (mallopt), and what it changes."""
import platform
import subprocess
import sys

import pytest

import minicnn
from minicnn import memory


class FakeLibc:
    def __init__(self, result=1):
        self.calls, self.result = [], result

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return self.result


def test_it_sets_the_mmap_threshold_to_glibcs_maximum_and_never_trims(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_libc", lambda: libc)
    monkeypatch.setattr(sys, "platform", "linux")
    assert minicnn.keep_freed_memory() is True
    assert libc.calls == [(-3, 32 * 2 ** 20), (-1, 2 ** 31 - 1)]      # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


@pytest.mark.parametrize("platform_name, libc", [("linux", FakeLibc(result=0)), ("linux", object()),
                                                 ("linux", None), ("darwin", FakeLibc())])
def test_it_says_false_where_it_cannot_apply(monkeypatch, platform_name, libc):
    monkeypatch.setattr(memory, "_libc", lambda: libc)
    monkeypatch.setattr(sys, "platform", platform_name)
    assert minicnn.keep_freed_memory() is False
    assert platform_name == "linux" or libc.calls == []


FAULTS = """
import resource, sys, numpy as np
import minicnn
if sys.argv[1] == "keep":
    assert minicnn.keep_freed_memory()
def step():                                  # six 4 MiB arrays alive at once, written, then freed
    arrays = [np.empty(2 ** 20, np.float32) for _ in range(6)]
    for a in arrays:
        a.fill(1)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc only")
def test_with_it_a_freed_array_is_reused_without_page_faults():
    def faults(mode):
        run = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        return int(run.stdout)
    # By default the heap is trimmed after each step (its free top exceeds twice the dynamic mmap
    # threshold), so every step maps at least two of its six arrays (1024 pages of 4 KiB each) afresh.
    assert faults("default") >= 5 * 1024 * 2
    assert faults("keep") < 100
