"""Profile-guided optimization (PGO) of the extension: build it instrumented, drive the data
plane through the paths the benchmark measures, and rebuild it with that profile.

    .venv/bin/python -m bench.pgo        (`make pgo`; `make bench` and `make bench-full` run it)

Why: under 64 keep-alive connections the request path's code does not fit the 32 KiB
instruction cache (the kernel's TCP path runs between every two requests and evicts it).
callgrind with cache simulation put meshcore at 1,407 instruction-cache misses per request
against nginx's 890; the profile lets LLVM lay the hot path out together, keep cold branches
(errors, rare protocols) out of line and inline by measured frequency: 717 misses and 17 %
fewer instructions per request (bench/README.md, optimization log). rustc, CPython and
pydantic-core ship PGO builds for the same reason.

The profile is kept under bench/.work/pgo keyed by the Rust sources, Cargo.lock and rustc, so
a rebuild with unchanged sources skips the instrumented build and the training. Tests and
`make demo` use the plain build (`make dev`), which `make dev` restores. The suite records
which build it measured (`machine.extension_build`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import loadgen
from bench.systems import ROOT, WORK, Lab, Processes, raise_nofile

PGO = WORK / "pgo"
RAW = PGO / "raw"
MARKER = PGO / "installed.json"
EXTENSION_GLOB = "_core*.so"


def llvm_major() -> str:
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^LLVM version: (\d+)", out, re.M)
    if match is None:
        raise RuntimeError("rustc -vV names no LLVM version")
    return match.group(1)


def profdata_tool() -> str:
    """llvm-profdata of rustc's own LLVM major version (profiles are not portable across
    majors): Debian's `llvm-<major>` package (the Makefile installs it)."""
    major = llvm_major()
    for name in (f"llvm-profdata-{major}", "llvm-profdata"):
        path = shutil.which(name)
        if path is None:
            continue
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        version = out.stdout
        if re.search(rf"LLVM version {major}\.", version):
            return path
    raise RuntimeError(
        f"no llvm-profdata for LLVM {major} (rustc's); install Debian's llvm-{major} "
        f"(`apt-get install llvm-{major}`)"
    )


def source_key() -> str:
    """What the profile depends on: every Rust source and manifest, the lock file, rustc."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in (ROOT / "rust").rglob("*")
        if p.is_file() and (p.suffix == ".rs" or p.name == "Cargo.toml")
    )
    for p in [*files, ROOT / "Cargo.lock", ROOT / "Cargo.toml"]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(subprocess.run(["rustc", "-vV"], capture_output=True, check=True).stdout)
    return h.hexdigest()[:16]


def extension() -> Path | None:
    return next((ROOT / "python" / "meshcore").glob(EXTENSION_GLOB), None)


def extension_build() -> str:
    """`pgo` when the installed extension is the one this module last built, else `plain`."""
    ext = extension()
    if ext is None or not MARKER.exists():
        return "plain"
    marker = json.loads(MARKER.read_text())
    return "pgo" if marker.get("sha256") == _sha256(ext) else "plain"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _maturin(target: str, rustflags: str) -> None:
    env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target" / target), "RUSTFLAGS": rustflags}
    maturin = str(ROOT / ".venv" / "bin" / "maturin")
    # The dependencies are in .venv already (`make dev`): only the extension is built.
    argv = [maturin, "develop", "--release", "--quiet", "--skip-install"]
    subprocess.run(argv, cwd=ROOT, env=env, check=True)


def train(seconds: float = 4) -> None:
    """The workload the profile is taken from: the benchmark's own paths, each long enough
    for the steady state to dominate (HTTP/1.1 keep-alive and a connection per request, h2c
    downstream, a 100 MB body, L4, and a sidecar pair)."""
    procs = Processes()
    raise_nofile()
    (PGO / "lab").mkdir(parents=True, exist_ok=True)
    lab = Lab(PGO / "lab", procs)
    try:
        lab.start_upstream()
        systems = [lab.start(name) for name in ("meshcore-http", "meshcore-tcp", "meshcore-pair")]
        for s in systems:
            for connections in (1, 64):
                r = loadgen.wrk(s.port, seconds, connections=connections, cpus=lab.client_cpus)
                print(f"  [pgo] {s.name} wrk -c{connections}: {r['rps']:.0f} req/s", flush=True)
            r = loadgen.wrk(s.port, seconds / 2, connections=8, cpus=lab.client_cpus, close=True)
            print(f"  [pgo] {s.name} wrk close: {r['rps']:.0f} req/s", flush=True)
            if s.h2_port:
                h2 = loadgen.h2load(
                    s.h2_port, seconds, connections=4, streams=16, cpus=lab.client_cpus
                )
                print(f"  [pgo] {s.name} h2load: {h2.get('rps', 0):.0f} req/s", flush=True)
            big = loadgen.curl_stream(s.port, lab.client_cpus)
            print(f"  [pgo] {s.name} 100 MB: {big['mb_per_s']:.0f} MB/s", flush=True)
        # SIGTERM: the sidecars drain and exit, and the profiling runtime writes at exit.
        for s in systems:
            lab.stop(s)
    finally:
        procs.close()


def main() -> int:
    PGO.mkdir(parents=True, exist_ok=True)
    tool = profdata_tool()
    key = source_key()
    profile = PGO / f"profile-{key}.profdata"
    t0 = time.monotonic()
    if profile.exists():
        print(f"pgo: profile {profile.name} matches the sources; reusing it", flush=True)
    else:
        shutil.rmtree(RAW, ignore_errors=True)
        RAW.mkdir(parents=True)
        print("pgo: building the instrumented extension (target/pgo-generate)", flush=True)
        _maturin("pgo-generate", f"-Cprofile-generate={RAW}")
        print("pgo: training", flush=True)
        train()
        raws = [p for p in RAW.glob("*.profraw") if p.stat().st_size > 0]
        if not raws:
            raise RuntimeError(f"training wrote no profile into {RAW}")
        for old in PGO.glob("profile-*.profdata"):
            old.unlink()
        subprocess.run([tool, "merge", "-o", str(profile), *map(str, raws)], check=True)
    print("pgo: building the optimized extension (target/pgo-use)", flush=True)
    _maturin("pgo-use", f"-Cprofile-use={profile}")
    ext = extension()
    if ext is None:
        raise RuntimeError("maturin installed no extension")
    MARKER.write_text(
        json.dumps(
            {
                "sha256": _sha256(ext),
                "profile": profile.name,
                "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
        )
    )
    print(f"pgo: done in {time.monotonic() - t0:.0f} s; {ext.name} is the PGO build", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
