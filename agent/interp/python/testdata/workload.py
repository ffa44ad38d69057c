# Python workload for the walk tests: each role prints
# "ready <role> <native thread id>" from inside the frame the tests expect on
# top (os.write is C and pushes no Python frame), so no walk can catch a
# thread still on its way there; then it spins until killed.
import os, threading, zlib

def inner():
    os.write(1, b"ready main %d\n" % threading.get_native_id())
    x = 0
    while True:
        x += 1

def middle():
    inner()

def outer():
    middle()

def spin_a():
    os.write(1, b"ready a %d\n" % threading.get_native_id())
    while True:
        pass

def spin_b():
    os.write(1, b"ready b %d\n" % threading.get_native_id())
    while True:
        pass

def compress_caller():
    data = b"fleetprof" * 4096
    os.write(1, b"ready zlib %d\n" % threading.get_native_id())
    while True:
        zlib.compress(data, 9)

def recurse(n):
    if n == 0:
        os.write(1, b"ready recurse %d\n" % threading.get_native_id())
        while True:
            pass
    recurse(n - 1)

def start(fn, *args):
    threading.Thread(target=fn, args=args, daemon=True).start()

start(spin_a)
start(spin_b)
start(compress_caller)
start(recurse, 200)
outer()
