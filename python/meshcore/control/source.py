"""The file-backed config source: config files → validated resources → a `ConfigState`.

`FileSource.load(files)` re-reads only the files whose fingerprint changed since the last
load (parsing and validating a thousand objects takes seconds; one edited file takes
milliseconds), then decides: any error-level diagnostic (YAML syntax, schema, Istio's
webhook rules, a file that cannot be read) rejects the whole load, because a proxy must
never receive config compiled from half an edit. Otherwise the registry and the compiler
are built once, into an immutable `ConfigState` that every per-proxy compile then reads;
the compiler reuses what the previous accepted generation's built from unchanged objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from meshcore.compile import Compiler
from meshcore.config import (
    Diagnostic,
    IstioResource,
    LoadResult,
    MeshConfig,
    MeshConfigError,
    load_mesh_config,
    load_text,
    unimplemented_fields,
)
from meshcore.config.diagnostics import FILE_READ_ERROR
from meshcore.control.watch import Fingerprint
from meshcore.registry import MemoryRegistry, registry_from_resources


@dataclass(frozen=True)
class ConfigState:
    """One accepted version of the whole config; never mutated once built."""

    generation: int
    compiler: Compiler
    load: LoadResult
    warnings: tuple[Diagnostic, ...]
    loaded_at: float
    """`time.time()` when it was accepted."""
    changed_at: float
    """`time.monotonic()` when the edit that led to it was first noticed."""


@dataclass(frozen=True)
class Rejection:
    """A load refused because of errors; the previous `ConfigState` keeps serving."""

    errors: tuple[Diagnostic, ...]
    at: float = field(default_factory=time.time)

    def summary(self) -> str:
        return "; ".join(d.format_text() for d in self.errors)


class FileSource:
    """Loads config files with a per-file cache; a reload re-parses only what changed."""

    def __init__(self, mesh_file: Path | None = None) -> None:
        self.mesh_file = mesh_file
        self._files: dict[Path, tuple[Fingerprint, LoadResult]] = {}
        self._generation = 0
        self._compiler: Compiler | None = None
        self._registry: MemoryRegistry | None = None
        self._unimplemented: dict[int, tuple[IstioResource, list[Diagnostic]]] = {}

    def read(self, files: dict[Path, Fingerprint]) -> LoadResult:
        """Everything in `files`, from the cache where the fingerprint is unchanged."""
        cached = self._files
        self._files = {}
        result = LoadResult()
        for path, fingerprint in sorted(files.items()):
            if self.mesh_file is not None and path == self.mesh_file:
                continue
            hit = cached.get(path)
            loaded = hit[1] if hit is not None and hit[0] == fingerprint else _load_file(path)
            self._files[path] = (fingerprint, loaded)
            result.extend(loaded)
        return result

    def load(
        self, files: dict[Path, Fingerprint], changed_at: float
    ) -> tuple[ConfigState | None, Rejection | None]:
        """The new state, or the reason there is none (then the caller keeps the old one)."""
        result = self.read(files)
        errors = list(result.errors)
        mesh = MeshConfig()
        if self.mesh_file is not None:
            try:
                mesh = load_mesh_config(self.mesh_file)
            except MeshConfigError as error:
                errors += error.diagnostics
            except (OSError, ValueError) as error:
                errors.append(Diagnostic.of(FILE_READ_ERROR, str(error), file=str(self.mesh_file)))
        if errors:
            return None, Rejection(tuple(errors))
        warnings = [d for d in result.diagnostics if not d.is_error]
        known, self._unimplemented = self._unimplemented, {}
        for resource in result.resources:
            if isinstance(resource, IstioResource):
                # An object of an unchanged file is the same object: its findings too.
                hit = known.get(id(resource))
                found = hit[1] if hit is not None and hit[0] is resource else None
                if found is None:
                    found = unimplemented_fields(resource)
                self._unimplemented[id(resource)] = (resource, found)
                warnings += found
        registry = registry_from_resources(result.resources, previous=self._registry)
        self._registry = registry
        self._generation += 1
        # Given the last accepted compiler, pieces built from objects of files this edit
        # did not touch (the very same objects) are reused, not rebuilt.
        compiler = Compiler(result.resources, registry, mesh=mesh, previous=self._compiler)
        self._compiler = compiler
        state = ConfigState(
            generation=self._generation,
            compiler=compiler,
            load=result,
            warnings=tuple(warnings),
            loaded_at=time.time(),
            changed_at=changed_at,
        )
        return state, None


def _load_file(path: Path) -> LoadResult:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return LoadResult(diagnostics=[Diagnostic.of(FILE_READ_ERROR, str(error), file=str(path))])
    return load_text(text, str(path))
