# Python workload for the walk tests: prints "ready <role> <native thread id>"
# per thread, then spins until killed.
import os, threading, zlib

def inner():
    x = 0
    while True:
        x += 1

def middle():
    inner()

def outer():
    middle()

def spin_a():
    while True:
        pass

def spin_b():
    while True:
        pass

def compress_caller():
    data = b"fleetprof" * 4096
    while True:
        zlib.compress(data, 9)

def recurse(n):
    if n == 0:
        while True:
            pass
    recurse(n - 1)

def start(role, fn, *args):
    def run():
        os.write(1, f"ready {role} {threading.get_native_id()}\n".encode())
        fn(*args)
    threading.Thread(target=run, daemon=True).start()

start("a", spin_a)
start("b", spin_b)
start("zlib", compress_caller)
start("recurse", recurse, 200)
os.write(1, f"ready main {threading.get_native_id()}\n".encode())
outer()
