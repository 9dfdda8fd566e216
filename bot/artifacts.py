"""Model and example-data artifacts: manifests, `btsbot models pull`, the local cache, ONNX conversion.

Each artifact comes from the first place that has it: an explicit directory (`--from`), the directories
in BTSBOT_MODEL_MIRROR (':'-separated), then its public URL. Its sha256 is verified before it is
unpacked into the cache, and an `installed.json` marker is written last, so a half-done pull is never
mistaken for an installed model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

MANIFESTS = {"models": "production_models", "example_data": "example_data"}
MIRROR_ENV = "BTSBOT_MODEL_MIRROR"
CACHE_ENV = "BTSBOT_CACHE_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGED = Path(__file__).resolve().parent / "_data"


class ArtifactError(RuntimeError):
    """A missing, corrupt or unverifiable artifact; the message names the file and what to run."""


@dataclass(frozen=True)
class Artifact:
    group: str  # "models" | "example_data"
    name: str
    version: str
    file: str
    sha256: str
    size: int
    url: str
    kind: str  # "savedmodel-tar" | "keras-h5" | "file"
    member: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.file})"


def _manifest_path(group: str) -> Path:
    folder = MANIFESTS[group]
    in_repo = _REPO_ROOT / folder / "manifest.json"
    if in_repo.is_file():
        return in_repo
    return _PACKAGED / f"{folder}.json"


def load_manifest(group: str) -> list[Artifact]:
    path = _manifest_path(group)
    try:
        entries = json.loads(path.read_text())["artifacts"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"cannot read the {group} manifest {path}: {exc}") from None
    keys = Artifact.__dataclass_fields__.keys() - {"group"}
    return [Artifact(group=group, **{k: v for k, v in e.items() if k in keys}) for e in entries]


def get_artifact(group: str, name: str) -> Artifact:
    for art in load_manifest(group):
        if art.name == name:
            return art
    raise ArtifactError(f"no artifact named {name!r} in the {group} manifest")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "btsbot"


def artifact_dir(art: Artifact, cache: Path) -> Path:
    return cache / art.group / art.name / art.version


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mirror_dirs(explicit: Iterable[str | os.PathLike] = ()) -> list[Path]:
    dirs = [Path(d) for d in explicit if d]
    dirs += [Path(d) for d in os.environ.get(MIRROR_ENV, "").split(os.pathsep) if d]
    return dirs


def installed_path(art: Artifact, cache: Path) -> Path:
    """The usable path of an installed artifact (the unpacked model dir or the file); raises ArtifactError."""
    d = artifact_dir(art, cache)
    marker = d / "installed.json"
    target = d / (art.member or art.file)
    hint = f"run `btsbot models pull` (cache: {cache})"
    force_hint = f"run `btsbot models pull --force` (cache: {cache})"
    if not marker.is_file():
        raise ArtifactError(f"{art.label} is not installed: {hint}")
    try:
        recorded = json.loads(marker.read_text()).get("sha256")
    except ValueError:
        recorded = None
    if recorded != art.sha256:
        raise ArtifactError(f"{art.label} in {d} does not match the manifest's sha256: {force_hint}")
    if not target.exists():
        raise ArtifactError(f"{art.label}: {target} is missing from the cache: {force_hint}")
    return target


def _download(url: str, dest: Path, timeout_s: float) -> None:
    import requests

    with requests.get(url, stream=True, timeout=timeout_s) as resp:
        resp.raise_for_status()
        with open(dest, "wb") as fh:
            for chunk in resp.iter_content(1 << 20):
                fh.write(chunk)


def _verify(art: Artifact, path: Path, origin: str) -> None:
    size = path.stat().st_size
    if size != art.size:
        raise ArtifactError(
            f"{art.file} from {origin} is {size} bytes, the manifest says {art.size} (truncated or wrong file)"
        )
    digest = sha256_of(path)
    if digest != art.sha256:
        raise ArtifactError(f"{art.file} from {origin} has sha256 {digest}, the manifest says {art.sha256}")


def _safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """The members of a tar that stay inside `dest`: regular files and directories only (what the "data"
    filter of newer Pythons allows of a model archive); anything else is an error."""
    root = dest.resolve()
    out = []
    for m in tar.getmembers():
        target = (root / m.name).resolve()
        if m.name.startswith("/") or (target != root and root not in target.parents):
            raise tarfile.TarError(f"member {m.name!r} would land outside {dest}")
        if not (m.isfile() or m.isdir()):
            raise tarfile.TarError(f"member {m.name!r} is not a regular file or directory")
        out.append(m)
    return out


def _unpack(art: Artifact, src: Path, dest: Path) -> None:
    if art.kind == "savedmodel-tar":
        try:
            with tarfile.open(src) as tar:  # "r:*": the production "tar.gz" is a plain tar
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, filter="data")
                else:  # Python < 3.11.4 (Debian 12's 3.11.2): the same refusals, checked here
                    tar.extractall(dest, members=_safe_members(tar, dest))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArtifactError(f"{art.file} is not a readable tar archive ({exc})") from None
        if not (dest / (art.member or "")).is_dir():
            raise ArtifactError(f"{art.file} does not hold {art.member}/")
    else:
        shutil.copyfile(src, dest / art.file)


def pull(
    artifacts: Iterable[Artifact],
    cache: Path,
    sources: Iterable[str | os.PathLike] = (),
    allow_url: bool = True,
    force: bool = False,
    timeout_s: float = 60.0,
    log: Callable[[str], None] = lambda msg: None,
) -> list[Path]:
    """Fetch, verify and install artifacts; returns their installed paths."""
    dirs = mirror_dirs(sources)
    out = []
    for art in artifacts:
        if not force:
            try:
                out.append(installed_path(art, cache))
                log(f"{art.label}: already installed")
                continue
            except ArtifactError:
                pass
        d = artifact_dir(art, cache)
        d.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=d.parent, prefix=f".{art.version}-") as tmp:
            tmp = Path(tmp)
            candidates = [p / art.file for p in dirs if (p / art.file).is_file()]
            if candidates:
                src, origin = candidates[0], str(candidates[0])
            elif allow_url and art.url:
                src, origin = tmp / art.file, art.url
                log(f"{art.label}: downloading {art.url}")
                try:
                    _download(art.url, src, timeout_s)
                except Exception as exc:
                    tried = ", ".join(str(p) for p in dirs) or "no mirror directory"
                    raise ArtifactError(
                        f"cannot fetch {art.file}: not in {tried}, and {art.url} failed ({exc}); "
                        f"pass `btsbot models pull --from DIR` or set {MIRROR_ENV}"
                    ) from None
            else:
                tried = ", ".join(str(p) for p in dirs) or "no mirror directory"
                raise ArtifactError(f"cannot find {art.file} in {tried}; pass --from DIR or set {MIRROR_ENV}")
            _verify(art, src, origin)
            staged = tmp / "staged"
            staged.mkdir()
            _unpack(art, src, staged)
            (staged / "installed.json").write_text(json.dumps({"sha256": art.sha256, "origin": origin}))
            if d.exists():
                shutil.rmtree(d)
            staged.rename(d)
        log(f"{art.label}: installed from {origin}")
        out.append(installed_path(art, cache))
    return out
