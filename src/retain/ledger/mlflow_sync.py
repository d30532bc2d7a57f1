"""The optional MLflow mirror (``pip install retain[mlflow]``, ``--mlflow URI``).

Each version becomes an MLflow run (params, scores as metrics, the full record, the model folder) and a
version of the registered model ``retain-<home name>``; the ``champion`` alias follows promotions and
rollbacks, the ecosystem's convention for "register, compare, roll back". The home stays the source of truth:
syncing runs after the ledger commit, and what it created is recorded in the audit log.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger.core import Home, Merge

ALIAS = "champion"
VERSION_TAG = "retain.version"


def require() -> None:
    """Fail before any work starts when ``--mlflow`` was asked for but MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise RetainError("MLflow is not installed (pip install 'retain[mlflow]')", field="mlflow") from None


def _client(uri: str) -> Any:
    require()
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registered_name(home: Home) -> str:
    return f"retain-{home.root.name}"


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(f"{prefix}.{key}", sub).items()}
    return {prefix: str(value)[:500]}


def _model_version(client: Any, home: Home, name: str) -> Any | None:
    versions = client.search_model_versions(f"name='{registered_name(home)}'")
    return next((mv for mv in versions if mv.tags.get(VERSION_TAG) == name), None)


def log_version(home: Home, name: str, uri: str, *, merge: Merge) -> dict[str, Any]:
    """Log one version as a run and register it; return the run id and registry version (a LoRA version's model
    is ``merge``d onto its parent, :meth:`retain.ledger.core.Home.materialize`)."""
    import mlflow

    client = _client(uri)
    row = home.version(name)
    record = row["record"]
    experiment = mlflow.set_experiment(registered_name(home))
    with tempfile.TemporaryDirectory(prefix="retain-mlflow-") as work:
        with mlflow.start_run(run_name=name, experiment_id=experiment.experiment_id) as run:
            mlflow.log_params({"method": record["method"], "seed": record["seed"], "lora": record["lora"],
                               "parent": record["parent"], "skill": record["skill"],
                               **_flat("options", record["options"])})
            mlflow.log_metrics({f"{suite[:-1]}.{skill}": value for suite, values in record["scores"].items()
                                for skill, value in values.items()})
            mlflow.set_tags({VERSION_TAG: name, "retain.status": row["status"], "retain.home": str(home.root),
                             "retain.weights_sha256": record["artifacts"]["weights_sha256"]})
            mlflow.log_dict(record, "retain-record.json")
            mlflow.log_artifacts(str(home.materialize(name, Path(work) / "model", merge)), artifact_path="model")
    model = registered_name(home)
    if not client.search_registered_models(f"name='{model}'"):
        client.create_registered_model(model, description=f"retain home {home.root}")
    version = client.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                          tags={VERSION_TAG: name})
    return {"run_id": run.info.run_id, "model_version": version.version}


def set_champion(home: Home, name: str, uri: str, *, merge: Merge) -> str:
    """Point the registered model's ``champion`` alias at the version (registering it first if needed)."""
    client = _client(uri)
    version = _model_version(client, home, name)
    number = version.version if version else log_version(home, name, uri, merge=merge)["model_version"]
    client.set_registered_model_alias(registered_name(home), ALIAS, number)
    return str(number)


def sync(home: Home, uri: str, name: str, champion: bool, *, merge: Merge) -> dict[str, Any] | None:
    """Mirror a version (and, if it is champion now, the alias); record what was created in the audit log.

    The caller holds ``home.writing``. An MLflow failure is reported and leaves the home as it was: the
    ledger, not the mirror, is the record.
    """
    try:
        return _sync(home, uri, name, champion, merge)
    except RetainError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the optional mirror must not break the ledger
        print(f"retain: warning: MLflow sync of {name} failed ({type(err).__name__}: {err}); the home is intact",
              file=sys.stderr)
        return None


def _sync(home: Home, uri: str, name: str, champion: bool, merge: Merge) -> dict[str, Any]:
    client = _client(uri)
    existing = _model_version(client, home, name)
    created = log_version(home, name, uri, merge=merge) if existing is None else {"run_id": existing.run_id,
                                                                      "model_version": existing.version}
    if champion:
        set_champion(home, name, uri, merge=merge)
    event = {"type": "mlflow_synced", "version": name, "uri": uri, "registered_model": registered_name(home),
             "run_id": created["run_id"], "model_version": str(created["model_version"]),
             "alias": ALIAS if champion else None}
    home.commit([event])
    return event
