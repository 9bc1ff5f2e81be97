"""The process-wide allocator settings: freed preparation memory goes back to the OS."""

import subprocess
import sys

import pytest

CHILD = """
import numpy as np
from facelab.cpu_memory import keep_freed_memory, release_freed_memory

def own_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("RssAnon"))
    return int(fields["RssAnon"].split()[0]) / 1024

assert keep_freed_memory()
big = np.ones(200 * 2**20 // 8)      # below the raised mmap threshold: served from the heap
pinned = np.ones(1024)                # allocated after it, so the heap's top stays in use
del big
before = own_mb()
released = release_freed_memory()
print(released, before - own_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, on Linux")
def test_memory_freed_after_preparation_is_returned():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    released, dropped_mb = result.stdout.split()
    assert released == "True"
    assert float(dropped_mb) > 150  # of the 200 MB freed


OWN_PAGES_CHILD = """
import numpy as np
from facelab.cpu_memory import keep_freed_memory, large_arrays_in_own_pages

def own_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith("RssAnon"))
    return int(fields["RssAnon"].split()[0]) / 1024

def kept_after_free():
    start = own_mb()
    big = np.ones(100 * 2**20 // 8)   # 100 MB, below keep_freed_memory's mmap threshold
    pinned = np.ones(1024)            # allocated after it, so the heap's top stays in use
    del big
    return own_mb() - start

assert keep_freed_memory()
with large_arrays_in_own_pages():
    inside = kept_after_free()
print(inside, kept_after_free())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, on Linux")
def test_large_arrays_freed_inside_the_block_go_back_and_outside_it_are_kept():
    result = subprocess.run([sys.executable, "-c", OWN_PAGES_CHILD], capture_output=True, text=True, check=True)
    inside, outside = map(float, result.stdout.split())
    assert inside < 20 and outside > 80
