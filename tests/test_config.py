"""Config loading: precedence, strict keys, coercion, and one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from distill.core.config import load_config, option, parse_override, to_dict
from distill.core.errors import DistillError


@dataclass
class Lora:
    r: int = option(16, help="rank")
    alpha: float = option(32.0, help="alpha")


@dataclass
class Data:
    path: str = option(help="where")
    weight: float = option(1.0, help="mixing weight")


@dataclass
class Recipe:
    name: str = option("x", help="a name")
    lr: float = option(1e-4, help="learning rate")
    steps: int = option(10, help="steps")
    packing: bool = option(False, help="pack")
    tags: list[str] = option([], help="tags")
    lora: Lora | None = option(None, help="optional lora")
    datasets: list[Data] = option([], help="datasets")
    sft: dict = field(default_factory=dict, metadata={"help": "passthrough"})


def test_precedence_default_yaml_values_set(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: from_yaml\nlr: 1e-5\nsteps: 20\n")
    cfg = load_config(Recipe, path, overrides=["steps=30"], values={"name": "from_cli", "lr": None})
    assert cfg.name == "from_cli"  # CLI option beats YAML
    assert cfg.lr == 1e-5 and isinstance(cfg.lr, float)  # YAML 1.1 reads 1e-5 as a string: coerced
    assert cfg.steps == 30  # --set beats everything
    assert cfg.packing is False  # default kept


def test_nested_dataclasses_and_lists(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("lora: {r: 8}\ndatasets:\n  - {path: a}\n  - {path: b, weight: 2}\nsft: {max_length: 128}\n")
    cfg = load_config(Recipe, path, overrides=["datasets.0.weight=0.5", "lora.alpha=4", "sft.packing=true"])
    assert cfg.lora == Lora(r=8, alpha=4.0)
    assert [d.weight for d in cfg.datasets] == [0.5, 2.0]
    assert cfg.sft == {"max_length": 128, "packing": True}
    assert to_dict(cfg)["datasets"][1] == {"path": "b", "weight": 2.0}


def test_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1e-5\n")
    with pytest.raises(DistillError, match=r"unknown key learning_rate in Recipe; valid keys: name, lr, steps"):
        load_config(Recipe, path)
    with pytest.raises(DistillError, match=r"unknown key lora.rank in Lora; valid keys: r, alpha"):
        load_config(Recipe, overrides=["lora.rank=4"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("steps=many", "'steps' must be int"),
        ("packing=maybe", "'packing' must be bool"),
        ("noequals", "not of the form key=value"),
        ("datasets.3.weight=1", "not an index"),
    ],
)
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(DistillError, match=message) as err:
        load_config(Recipe, overrides=[override], values={"datasets": [{"path": "a"}]})
    assert "\n" not in str(err.value)


def test_missing_required_and_bad_yaml(tmp_path):
    with pytest.raises(DistillError, match="missing required key 'datasets.0.path'"):
        load_config(Recipe, values={"datasets": [{"weight": 1}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(DistillError, match="not valid YAML"):
        load_config(Recipe, bad)
    with pytest.raises(DistillError, match="not found"):
        load_config(Recipe, tmp_path / "nope.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("x=null") == ("x", None)
    assert parse_override("x=") == ("x", "")
    assert parse_override("url=http://h:1/v1") == ("url", "http://h:1/v1")
