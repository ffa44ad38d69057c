# Workload of BenchmarkPythonAgreement: rounds of four functions, each
# burning a fixed share of the round's thread CPU time (50, 30, 15 and 5%),
# until argv[1] seconds of CPU are spent. Measured with thread_time, so
# preemption on a busy host does not change the shares.
import sys
import time

ROUND = 0.01  # seconds of CPU per round


def f50():
    end = time.thread_time() + 0.50 * ROUND
    while time.thread_time() < end:
        pass


def f30():
    end = time.thread_time() + 0.30 * ROUND
    while time.thread_time() < end:
        pass


def f15():
    end = time.thread_time() + 0.15 * ROUND
    while time.thread_time() < end:
        pass


def f05():
    end = time.thread_time() + 0.05 * ROUND
    while time.thread_time() < end:
        pass


total = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
stop = time.thread_time() + total
while time.thread_time() < stop:
    f50()
    f30()
    f15()
    f05()
