"""``valueloop build``: one use case's champion as a self-contained bundle that serves it on
another machine, the "executable software product":

    model/             the MLflow model directory, verified by digest when copied and when served
    compiled/model.so  the version's compiled trees, when it has them (``model: compile: true``),
                       verified by their own digest when copied and when served
    valueloop/         valueloop's own code (pure Python), so the serving app is the same one
    requirements.txt   every package serving needs, pinned to the versions installed here
    bundle.json        use case, version, digest, the deploy policy
    serve.py           the entrypoint: ``python serve.py --port 8080``
    Dockerfile         ``docker build -t churn . && docker run -e VALUELOOP_BUNDLE_TOKEN -p 8080:8080 churn``
    .dockerignore      keeps the prediction log and caches out of the image

The bundle has no registry and no user database: it serves the one version it holds to whoever
sends the bearer token in ``VALUELOOP_BUNDLE_TOKEN`` (``--no-auth`` behind a gateway that checks
callers itself), and keeps its prediction log under ``state/``. Its image runs as a user without
privileges, with LightGBM's OpenMP runtime and a health check on ``/v2/health/ready``.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import Conflict, InvalidInput
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import Deploy
from valueloop.outcomes.usecases import get_usecase, spec_of
from valueloop.outcomes.users import get_user

if TYPE_CHECKING:
    from valueloop.deploy.model import ServedModel

#: What serving compiled trees also imports.
COMPILED = ("tl2cgen", "treelite")
#: What the serving app imports, besides what the model's own requirements name.
SERVING = ("starlette", "uvicorn", "httptools", "limits", "pydantic", "pydantic-core", "prometheus-client", "pyarrow",
           "pyyaml", "simpleeval", "sqlalchemy", "mlflow", "scikit-learn", "numpy", "pandas", "scipy", "cloudpickle",
           "lightgbm")

ENTRYPOINT = '''"""Serve this bundle: python serve.py [--host 0.0.0.0] [--port 8080]."""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from valueloop.deploy.bundle import serve_bundle  # noqa: E402
from valueloop.errors import ValueloopError  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8080)
parser.add_argument("--no-auth", action="store_true",
                    help="serve without a token (only behind a gateway that authenticates callers)")
args = parser.parse_args()
try:
    serve_bundle(HERE, args.host, args.port, auth=not args.no_auth)
except ValueloopError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
'''

DOCKERFILE = '''FROM python:{python}-slim-bookworm
# libgomp1: LightGBM's OpenMP runtime, which the slim image lacks; Debian's current one
# hadolint ignore=DL3008
RUN apt-get update \\
    && apt-get install -y --no-install-recommends libgomp1 \\
    && rm -rf /var/lib/apt/lists/* \\
    && useradd --create-home --uid 10001 valueloop
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN mkdir -p state && chown 10001 state
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=3)"]
# the bearer token clients send comes from the environment: docker run -e VALUELOOP_BUNDLE_TOKEN=...
CMD ["python", "serve.py", "--host", "0.0.0.0", "--port", "8080"]
'''
DOCKERIGNORE = "state/\n**/__pycache__\n**/*.pyc\nDockerfile\n.dockerignore\n"
#: the environment variable holding the one token a bundle accepts
TOKEN_ENV = "VALUELOOP_BUNDLE_TOKEN"


class Manifest(BaseModel):
    """``bundle.json``: what the bundle serves and the digests its files must still match."""

    usecase: str
    version: int
    digest: str
    deploy: Deploy
    compiled: str | None = None
    notice: str | None = None

    @classmethod
    def read(cls, root: Path) -> Manifest:
        from pydantic import ValidationError

        from valueloop.validation import describe_errors

        try:
            return cls.model_validate_json((root / "bundle.json").read_text())
        except OSError as exc:
            raise InvalidInput(f"bundle {root}: bundle.json cannot be read ({exc.strerror})") from None
        except ValidationError as exc:
            raise InvalidInput(f"bundle {root}: bundle.json is not a bundle's manifest:",
                               problems=describe_errors(exc)) from None


class BundleView(BaseModel):
    usecase: str
    version: int
    digest: str
    path: str
    requirements: list[str]


def _pins(model_dir: Path, compiled: bool) -> list[str]:
    pins: dict[str, str] = {}
    for package in SERVING + (COMPILED if compiled else ()):
        try:
            pins[package] = f"{package}=={version(package)}"
        except PackageNotFoundError:
            continue
    requirements = model_dir / "requirements.txt"
    if requirements.is_file():  # the model's own pins win: they are what trained it
        for line in requirements.read_text().splitlines():
            name = line.split("==")[0].strip().lower()
            if "==" in line and not line.startswith("#"):
                pins[name] = line.strip()
    return sorted(pins.values())


def build(session: Session, settings: Settings, actor: str | None, usecase: str, out: Path) -> BundleView:
    """Write the champion's bundle to ``out`` (a new or empty directory), whole or not at all."""
    import hashlib
    import platform

    from valueloop.learn.compiled import ARTIFACT_DIR, LIBRARY
    from valueloop.learn.registry import artifact_digest, compiled_library, verified_model_dir
    from valueloop.outcomes.privacy import transparency_notices

    found = get_usecase(session, usecase)
    acting = get_user(session, actor)
    require(session, acting, Action.deploy, found)
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"--out: {out} exists and is not empty; choose a new directory")
    try:
        number, model_dir = verified_model_dir(session, settings, found.name, "champion")
    except Exception as exc:
        raise Conflict(f"use case '{found.name}' has no champion to build: {exc}") from None
    library = compiled_library(session, settings, found.name, number)  # digest-verified bytes
    staging = out.parent / f".{out.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copytree(model_dir, staging / "model", ignore=shutil.ignore_patterns("registered_model_meta"))
        package = Path(__file__).resolve().parents[1]
        shutil.copytree(package, staging / "valueloop", ignore=shutil.ignore_patterns("__pycache__", "_examples"))
        digest = artifact_digest(staging / "model")
        if library is not None:
            (staging / ARTIFACT_DIR).mkdir()
            (staging / ARTIFACT_DIR / LIBRARY).write_bytes(library)
        requirements = _pins(staging / "model", compiled=library is not None)
        policy = spec_of(found).deploy or Deploy()
        (staging / "requirements.txt").write_text("\n".join(requirements) + "\n")
        manifest = Manifest(usecase=found.name, version=number, digest=digest, deploy=policy,
                            compiled=hashlib.sha256(library).hexdigest() if library is not None else None,
                            notice=transparency_notices(session, [found.name]).get(found.name))
        (staging / "bundle.json").write_text(manifest.model_dump_json(indent=2))
        (staging / "serve.py").write_text(ENTRYPOINT)
        (staging / "Dockerfile").write_text(DOCKERFILE.format(python=".".join(platform.python_version_tuple()[:2])))
        (staging / ".dockerignore").write_text(DOCKERIGNORE)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    audit.record(session, acting.name, "deploy.build", "model_version", f"{found.name}/v{number}",
                 usecase=found.name, after={"path": str(out), "digest": digest})
    return BundleView(usecase=found.name, version=number, digest=digest, path=str(out), requirements=requirements)


def load_bundle(root: Path, manifest: Manifest) -> ServedModel:
    """The bundle's model, its files checked against the digests it was built with; its trees
    from the compiled library when it carries one (a changed library is refused, as a changed
    model is; one that cannot load on this machine falls back to Python with a warning)."""
    import hashlib

    import mlflow.pyfunc

    from valueloop.deploy.model import from_pyfunc
    from valueloop.learn.compiled import ARTIFACT_DIR, LIBRARY
    from valueloop.learn.registry import artifact_digest

    if artifact_digest(root / "model") != manifest.digest:
        raise Conflict(f"bundle {root}: the model's files changed since the bundle was built; not serving")
    library = None
    if manifest.compiled is not None:
        library = (root / ARTIFACT_DIR / LIBRARY).read_bytes()
        if hashlib.sha256(library).hexdigest() != manifest.compiled:
            raise Conflict(f"bundle {root}: {ARTIFACT_DIR}/{LIBRARY} changed since the bundle was built; not serving")
    return from_pyfunc(None, manifest.usecase, str(manifest.version), mlflow.pyfunc.load_model(str(root / "model")),
                       library=library)


def serve_bundle(root: Path, host: str, port: int, auth: bool = True) -> None:
    """Serve a bundle's model with valueloop's serving app, after checking its digests; with
    ``auth``, only to callers that send the token of ``VALUELOOP_BUNDLE_TOKEN``."""
    import os

    import uvicorn

    from valueloop.config import load_settings
    from valueloop.deploy.app import ServeOptions, create_app
    from valueloop.deploy.pool import Wanted

    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if auth and token is None:
        raise InvalidInput(f"{TOKEN_ENV} is not set: set it to the bearer token clients must send, or pass "
                           "--no-auth to serve behind a gateway that authenticates them")
    manifest = Manifest.read(root)
    served = load_bundle(root, manifest)  # checked before the server starts: a changed bundle never serves
    wanted = {manifest.usecase: Wanted(str(manifest.version), None, manifest.deploy, manifest.notice)}

    def loader(_: Settings, usecase: str, number: str) -> ServedModel:
        return served

    settings = load_settings({"VALUELOOP_HOME": str(root / "state")})
    app = create_app(settings, ServeOptions(auth=auth, poll_seconds=3600, token=token), loader, lambda _: wanted)
    uvicorn.run(app, host=host, port=port, log_level="warning")
