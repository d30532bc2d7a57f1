"""The optional MLflow mirror against a local sqlite store: runs, registry versions, the champion alias.

Skipped where MLflow is not installed (the base install never needs it)."""

from __future__ import annotations

import pytest

from retain.ledger import store
from retain.ledger.operations import rollback
from retain.ledger.verify import verify

mlflow = pytest.importorskip("mlflow")


def test_versions_become_runs_and_the_champion_alias_follows_promotion_and_rollback(tmp_path, monkeypatch, new_home,
                                                                                    learn, change_one_layer):
    from mlflow.tracking import MlflowClient

    from retain.ledger.mlflow_sync import registered_name, sync

    monkeypatch.chdir(tmp_path)  # a sqlite tracking store keeps artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    home, base = new_home(tmp_path)
    with home.writing("mlflow"):
        sync(home, uri, "v1", champion=True)
    for name, folder, score in (("add", change_one_layer(base, tmp_path / "m2"), 0.9),
                                ("mul", change_one_layer(base, tmp_path / "m3", delta=0.02), 0.1)):
        outcome = learn(home, folder, name, score)
        with home.writing("mlflow"):
            sync(home, uri, outcome.version, outcome.promoted)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = registered_name(home)
    by_version = {mv.tags["retain.version"]: mv for mv in client.search_model_versions(f"name='{model}'")}
    assert sorted(by_version) == ["v1", "v2", "v3"]
    assert client.get_model_version_by_alias(model, "champion").version == by_version["v2"].version
    run = client.get_run(by_version["v2"].run_id)
    assert run.data.metrics["skill.add"] == 0.9 and run.data.params["method"] == "sft"
    assert run.data.tags["retain.weights_sha256"] == home.version("v2")["weights_sha256"]
    assert client.get_run(by_version["v3"].run_id).data.tags["retain.status"] == "rejected"

    rollback(home, "v1")
    with home.writing("mlflow"):
        sync(home, uri, "v1", champion=True)
    assert client.get_model_version_by_alias(model, "champion").version == by_version["v1"].version
    synced = [e["payload"] for e in store.events_of(home.conn) if e["type"] == "mlflow_synced"]
    assert [(e["version"], e["alias"]) for e in synced] == [("v1", "champion"), ("v2", "champion"),
                                                             ("v3", None), ("v1", "champion")]
    assert len({e["run_id"] for e in synced}) == 3
    assert verify(home.root).ok
