"""system.json: the software and CPU a run trained on, one entry per system change."""

import json

import numpy as np

from pongrl import checkpoint, logger
from pongrl.logger import CPU_FLAGS, cpu_info, record_system, system_info


def test_system_info_names_versions_cpu_and_blas():
    info = system_info()
    assert info["packages"]["numpy"] == np.__version__
    assert set(info["packages"]) == {"pongrl", "numpy", "gymnasium", "ale-py"}
    assert info["cpu"]["count"] >= 1 and info["cpu"]["model"]
    assert set(info["cpu"]["flags"]) <= set(CPU_FLAGS)
    assert all(set(b) == {"internal_api", "version", "architecture"} for b in info["blas"])
    json.dumps(info)  # plain JSON


def test_cpu_flags_come_in_a_fixed_order():
    flags = cpu_info()["flags"]
    assert flags == [f for f in CPU_FLAGS if f in flags]


def test_a_restart_on_the_same_system_adds_nothing_and_another_system_adds_an_entry(tmp_path, monkeypatch):
    path = tmp_path / "system.json"
    record_system(path, 0)
    record_system(path, 5000)
    first = json.loads(path.read_text())["systems"]
    assert len(first) == 1 and first[0]["from_env_steps"] == 0

    other = system_info()
    other["packages"] = other["packages"] | {"numpy": "0.0.1"}
    monkeypatch.setattr(logger, "system_info", lambda: other)
    record_system(path, 7000)
    systems = json.loads(path.read_text())["systems"]
    assert systems[0] == first[0]
    assert systems[1]["from_env_steps"] == 7000 and systems[1]["packages"]["numpy"] == "0.0.1"
    assert not list(tmp_path.glob(checkpoint.TEMP_GLOB))  # written to a temporary file, then renamed


def test_an_unreadable_system_json_is_started_again(tmp_path):
    path = tmp_path / "system.json"
    path.write_text("{not json")
    record_system(path, 300)
    systems = json.loads(path.read_text())["systems"]
    assert len(systems) == 1 and systems[0]["from_env_steps"] == 300
