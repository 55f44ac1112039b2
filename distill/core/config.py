"""Config loading shared by every stage: dataclass defaults < YAML file < CLI options < `--set key=value`.

    cfg = load_config(CurateConfig, yaml_path="recipes/curate/r1_math.yaml", overrides=["too_long.max_tokens=16384"])

Configs are plain dataclasses whose fields carry their help text (`field(metadata={"help": ...})`), which the
CLI shows. Loading is strict: an unknown key is an error that lists the valid ones, and values are coerced to
the field's type (`--set lr=1e-5` gives a float, although YAML 1.1 reads `1e-5` as a string).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from distill.core.errors import DistillError

T = TypeVar("T")


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with help text; a list/dict default is wrapped in a factory."""
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def help_for(cls: type, name: str) -> str:
    """The help text of a config field, for the CLI (help lives on the dataclass only)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def load_config(
    cls: type[T],
    yaml_path: str | Path | None = None,
    overrides: typing.Sequence[str] = (),
    values: dict[str, Any] | None = None,
) -> T:
    """Build `cls` from its defaults, then a YAML file, then `values` (CLI options that were given), then
    `--set` overrides (`a.b=v`, value parsed as YAML)."""
    data: dict[str, Any] = read_yaml(yaml_path) if yaml_path else {}
    for key, value in (values or {}).items():
        if value is not None:
            data[key] = value
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return from_dict(cls, data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DistillError(f"config file '{path}' not found; pass the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise DistillError(f"config file '{path}' is not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DistillError(f"config file '{path}' must hold a mapping of keys to values, not a {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=1e-5` -> ("a.b", 1e-5); the value is read as YAML so lists, bools and null work."""
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise DistillError(f"--set '{item}' is not of the form key=value (e.g. --set learning_rate=1e-5)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `data[a][b][c] = value` for key 'a.b.c'; a numeric part indexes a list (`datasets.0.weight`)."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise DistillError(f"--set {key}: '{part}' is not an index of a list of {len(node)} items")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif last:
            node[part] = value
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Strictly build dataclass `cls` from a mapping: unknown keys and missing required keys are errors."""
    label = where or cls.__name__
    if not isinstance(data, dict):
        raise DistillError(f"'{label}' must be a mapping of keys to values, got {type(data).__name__}: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise DistillError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(prefix + k for k in unknown)} in "
            f"{cls.__name__}; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DistillError(f"missing required key '{key}' in {cls.__name__}: {f.metadata.get('help', '')}")
    return cls(**kwargs)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Coerce a YAML/CLI value to type `tp`, or raise a DistillError naming the key and the expected type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except DistillError as err:
                errors.append(str(err))
        raise DistillError(errors[0] if len(errors) == 1 else f"'{key}' has an invalid value {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise DistillError(f"'{key}' must be one of {', '.join(map(repr, args))}, not {value!r}")
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        item_type = args[0] if args else Any
        return [coerce(v, item_type, f"{key}.{i}") for i, v in enumerate(items)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise DistillError(f"'{key}' must be a mapping, not {value!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {k: coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    return coerce_scalar(value, tp, key)


def coerce_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    else:
        return value
    raise DistillError(f"'{key}' must be {getattr(tp, '__name__', tp)}, not {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (for manifests); paths become strings."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))
