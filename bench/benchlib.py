"""Helpers of the benchmark scripts: loopback ports, a process's CPU and memory, and a
throwaway PostgreSQL (Debian's server, initdb in a temporary directory, a loopback port,
run as the postgres user when we are root)."""
import glob
import os
import socket
import subprocess
import sys
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} does not listen on 127.0.0.1:{port}")


def wait_ready(port, deadline_s=120):
    """Seconds until Vigil's /-/ready on 127.0.0.1:port answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < deadline_s:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2).read()
            return time.perf_counter() - start
        except OSError:
            time.sleep(0.02)
    sys.exit(f"vigil was not ready within {deadline_s} s")


def stop(proc, seconds=20):
    """Stops a process this script started: SIGTERM, then SIGKILL if it has not exited
    within `seconds` (a hung process is never left behind)."""
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Postgres:
    """A PostgreSQL server of our own; `stop()` ends it (pg_ctl, by its data directory)."""

    def __init__(self, work):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("PostgreSQL's server is missing: apt-get install postgresql (scripts/test does this)")
        self.bin = os.path.dirname(found[-1])
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        self.root = os.geteuid() == 0
        if self.root:
            subprocess.run(["chown", "-R", "postgres:", self.dir], check=True)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-U", "vigil", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -h 127.0.0.1 -k {self.dir}"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "start")
        self.dsn = f"host=127.0.0.1 port={self.port} user=vigil dbname=postgres"

    def _run(self, program, *args):
        command = [os.path.join(self.bin, program), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, sql):
        """One value from `psql -At`."""
        out = subprocess.run(["psql", "-At", "-d", self.dsn], input=sql, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
