"""Crafted request bodies get a 422 naming the problem (never a 500), and a non-finite prediction
neither breaks the response nor kills the prediction-log writer thread."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from omgmagics.deploy.predlog import PredictionLog, read_log
from omgmagics.deploy.server import create_app
from omgmagics.deploy.signature import InvalidRequest, RequestValidator

SIG = {"columns": [{"name": "age", "type": "integer", "dtype": "int64", "nullable": False},
                   {"name": "income", "type": "number", "dtype": "float64", "nullable": False}]}


class FakeBundle:
    signature = SIG
    version = "m/1"

    def __init__(self, item):
        self.item = item

    def info(self):
        return {"model_version": self.version}

    def predict_records(self, records):
        return [dict(self.item) for _ in records]


@pytest.fixture
def client(tmp_path):
    def make(item=None):
        log = PredictionLog(tmp_path / "log", "test", "m/1", flush_records=1, flush_seconds=0.05)
        app = create_app(FakeBundle(item or {"prediction": 1.0}), env="test", log=log.start(),
                         max_batch=8, max_body_bytes=1 << 20)
        return TestClient(app, base_url="http://127.0.0.1"), log
    return make


def _msg(validator, payload):
    with pytest.raises(InvalidRequest) as info:
        validator.records(payload)
    return info.value.body()["message"]


def test_huge_integers_are_rejected_naming_the_field():
    v = RequestValidator(SIG, 8)
    big = int("9" * 400)
    assert _msg(v, {"age": big, "income": 1.0}) == (
        "field 'age' is out of range: integers must be smaller than 2**53 in magnitude, "
        "got an integer of 400 digits")
    assert _msg(v, {"age": 1, "income": -big}) == (
        "field 'income' is out of range: integers must be smaller than 2**53 in magnitude, "
        "got an integer of 400 digits")
    assert _msg(v, {"age": 2**63, "income": 1.0}) == (
        "field 'age' is out of range: integers must be smaller than 2**53 in magnitude, "
        "got 9223372036854775808")
    assert v.records({"age": 2**53 - 1, "income": 1.0})[0] == [{"age": 2**53 - 1, "income": 1.0}]


def test_many_unknown_fields_are_refused_before_any_lookup(monkeypatch):
    import omgmagics.deploy.signature as signature

    calls = []
    monkeypatch.setattr(signature, "did_you_mean", lambda *a: calls.append(a) or "")
    v = RequestValidator(SIG, 8)
    rec = {"age": 1, "income": 1.0, **{f"x{i}": 0 for i in range(1000)}}
    assert _msg(v, rec) == ("the record has 1000 fields that are not inputs of this model, more "
                            "than the limit of 20")
    assert calls == []
    rec = {"age": 1, "income": 1.0, **{f"x{i}": 0 for i in range(10)}}
    assert _msg(v, rec) == "field 'x0' is not an input of this model. (+9 more)"
    assert len(calls) == 5


@pytest.mark.parametrize("body, message", [
    ('{"age": ' + "9" * 400 + ', "income": 1}',
     "field 'age' is out of range: integers must be smaller than 2**53 in magnitude, got an "
     "integer of 400 digits"),
    ('{"age": 1, "income": 1e999}', "field 'income' must be a number, got number Infinity"),
    ("[" * 5000, "the body is nested too deeply (a record is a flat JSON object)"),
])
def test_crafted_bodies_get_422(client, body, message):
    c, log = client()
    with c:
        r = c.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["message"] == message


def test_non_finite_prediction_is_null_in_response_and_log(client):
    c, log = client({"prediction": float("inf"), "score": float("nan"),
                     "probabilities": {"a": float("-inf"), "b": 0.5}})
    with c:
        r = c.post("/predict", json={"age": 1, "income": 2.0})
        assert r.status_code == 200
        assert "Infinity" not in r.text and "NaN" not in r.text
        assert r.json()["prediction"] is None
        log.flush()
        ready = c.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["log"] == {"write_errors": 0, "dropped": 0}
        assert "omg_prediction_log_write_errors_total" in c.get("/metrics").text
    rec = read_log(log.folder)[0]
    assert rec["prediction"] is None and rec["score"] is None
    assert rec["probabilities"] == {"a": None, "b": 0.5}


class Unserialisable:
    def __str__(self):
        raise RuntimeError("boom")


def test_writer_thread_survives_a_bad_record(tmp_path):
    log = PredictionLog(tmp_path, "test", "m/1", flush_records=1, flush_seconds=0.05).start()
    log.add("r1", {"x": float("nan")}, float("inf"), None, 1.0)
    log.add("r2", {"x": Unserialisable()}, 1, None, 1.0)
    log.add("r3", {"x": 1}, [1.0, float("nan")], None, 1.0)
    import time

    for _ in range(100):
        if log.written >= 2 and log.write_errors:
            break
        time.sleep(0.02)
    assert log._thread.is_alive()
    log.close()
    lines = [json.loads(x) for x in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert [(r["request_id"], r["inputs"], r["prediction"]) for r in lines] == [
        ("r1", {"x": None}, None), ("r3", {"x": 1}, [1.0, None])]
    assert log.write_errors == 1 and log.dropped == 1
    assert log.last_error == "RuntimeError: boom"
