#!/usr/bin/python3
"""Whole-process timings of `wardenctl ima replay` and `wardenctl eventlog replay` against their
peers, in one run (issue 27, docs/PERFORMANCE.md "Issue 27").

  bench/cli_replay.py --wardenctl build/agent/wardenctl [--baseline OLD] [--entries N] [--runs N]

IMA: generates a 100,000-entry ima-ng list (ASCII and binary, sha256 file digests), runs
`wardenctl ima replay` on each, and replays the ASCII list in this Python process with a
reimplementation of Keylime's algorithm (Keylime itself is not installable here; see
keylime_replay). Event log: `wardenctl eventlog replay` against `tpm2_eventlog` on the 15 KB
Arch Linux log of the shared test data. Reports wall time (median, minimum), CPU time (user + sys,
from wait4) and peak RSS (GNU time) of each command.
"""
import argparse
import hashlib
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def make_lists(n, directory):
    ascii_path = os.path.join(directory, "ascii_runtime_measurements")
    bin_path = os.path.join(directory, "binary_runtime_measurements")
    with open(ascii_path, "w") as a, open(bin_path, "wb") as b:
        for i in range(n):
            path = "/usr/lib/x86_64-linux-gnu/lib%d.so.1" % i
            digest = hashlib.sha256(path.encode()).digest()
            d_ng = b"sha256:\0" + digest
            n_ng = path.encode() + b"\0"
            data = struct.pack("<I", len(d_ng)) + d_ng + struct.pack("<I", len(n_ng)) + n_ng
            th = hashlib.sha1(data).digest()
            a.write("10 %s ima-ng sha256:%s %s\n" % (th.hex(), digest.hex(), path))
            b.write(struct.pack("<I", 10) + th + struct.pack("<I", 6) + b"ima-ng")
            b.write(struct.pack("<I", len(data)) + data)
    return ascii_path, bin_path


def keylime_replay(path):
    """Keylime's IMA replay (keylime/ima/ima.py _process_measurement_list with ast.Entry), without
    a runtime policy: per line, split, hex-decode the template hash, rebuild the ima-ng template
    data, check its SHA-1 against the template hash, hash it in the bank (sha256) and extend the
    running PCR 10 value. One bank, as Keylime does; wardenctl replays two (sha1 and sha256)."""
    running = b"\0" * 32
    ff = b"\xff" * 32
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            tokens = line.split(None, 4)
            if len(tokens) < 5 or tokens[2] != "ima-ng":
                raise ValueError("unexpected line: " + line[:80])
            template_hash = bytes.fromhex(tokens[1])
            algo, hexdigest = tokens[3].rsplit(":", 1)
            d_ng = algo.encode() + b":\0" + bytes.fromhex(hexdigest)
            n_ng = tokens[4].encode("utf-8", "surrogateescape") + b"\0"
            data = struct.pack("<I", len(d_ng)) + d_ng + struct.pack("<I", len(n_ng)) + n_ng
            if template_hash == b"\0" * 20:
                pcr_hash = ff
            else:
                if hashlib.sha1(data).digest() != template_hash:
                    raise ValueError("template hash mismatch")
                pcr_hash = hashlib.sha256(data).digest()
            running = hashlib.sha256(running + pcr_hash).digest()
    return running


def run(argv):
    """Wall and CPU (user + sys) seconds of one run, output discarded."""
    null = os.open(os.devnull, os.O_WRONLY)
    actions = [(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    os.close(null)
    if status != 0:
        raise RuntimeError("%s: wait status %d" % (argv, status))
    return wall, usage.ru_utime + usage.ru_stime


def peak_rss_kib(argv):
    # Not from this process's wait4: a spawned child inherits this interpreter's high-water mark
    # until exec. GNU time forks from a small process, so its %M is the command's own peak.
    if not os.path.exists("/usr/bin/time"):
        return float("nan")
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, check=True).stderr.decode().split()
    return float(out[-1])


def measure(name, argv, runs):
    run(argv)  # warm the page cache
    samples = [run(argv) for _ in range(runs)]
    walls = [w for w, _ in samples]
    cpus = [c for _, c in samples]
    rss = peak_rss_kib(argv)
    med, low = statistics.median(walls) * 1e3, min(walls) * 1e3
    cpu = statistics.median(cpus) * 1e3
    print("%-40s wall median %7.2f ms  min %7.2f ms  cpu %7.2f ms  peak RSS %6.1f MiB" %
          (name, med, low, cpu, rss / 1024))
    return low, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wardenctl", required=True)
    ap.add_argument("--baseline", action="append", default=[],
                    help="another wardenctl (e.g. an older build) measured in the same run")
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--eventlog", default="/work/shared/testdata/eventlog/event-arch-linux.bin")
    args = ap.parse_args()
    ctls = [os.path.abspath(c) for c in args.baseline + [args.wardenctl]]
    with tempfile.TemporaryDirectory() as d:
        ascii_path, bin_path = make_lists(args.entries, d)
        walls, cpus = [], []
        for _ in range(max(3, args.runs // 3)):
            t0, c0 = time.perf_counter(), time.process_time()
            keylime_replay(ascii_path)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        kl, kl_cpu = min(walls) * 1e3, statistics.median(cpus) * 1e3
        print("%-40s wall min %7.2f ms (in process)  cpu %7.2f ms" %
              ("keylime-style replay, ASCII (python3)", kl, kl_cpu))
        for ctl in ctls:
            print("--", ctl)
            a = measure("wardenctl ima replay, ASCII", [ctl, "ima", "replay", ascii_path],
                        args.runs)
            b = measure("wardenctl ima replay, binary", [ctl, "ima", "replay", bin_path],
                        args.runs)
            print("whole process vs keylime-style in process (min wall; cpu): "
                  "ASCII %.1fx; %.1fx, binary %.1fx; %.1fx" %
                  (kl / a[0], kl_cpu / a[1], kl / b[0], kl_cpu / b[1]))
    print("--")
    measure("/bin/true (spawn cost)", ["/bin/true"], args.runs)
    peer = shutil.which("tpm2_eventlog")
    for ctl in ctls:
        print("--", ctl)
        measure("wardenctl --version", [ctl, "--version"], args.runs)
        measure("wardenctl eventlog replay (%d B)" % os.path.getsize(args.eventlog),
                [ctl, "eventlog", "replay", args.eventlog], args.runs)
        if peer:
            measure("tpm2_eventlog", [peer, args.eventlog], args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
