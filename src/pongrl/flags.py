"""`pongrl train`'s flags, made from the fields of `Config`: one flag per field,
its help taken from the field's docstring, so a new hyperparameter is a new flag."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, cast

from .config import LAST_WITH_RETIRED, RETIRED, Config
from .errors import UserError
from .ppo import PPOConfig
from .reinforce import ReinforceConfig
from .version import __version__

FLAG_ALIASES = {"env_id": ["--env", "--env-id"]}


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) of a dataclass, its own fields only."""
    body, docs = cast(ast.ClassDef, ast.parse(inspect.getsource(cls)).body[0]).body, {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            if isinstance(node.target, ast.Name):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


CONFIG_PARTS = (
    (Config, "run (defaults < --config FILE < these flags)"),
    (ReinforceConfig, "REINFORCE (--algo reinforce)"),
    (PPOConfig, "PPO (--algo ppo)"),
)


def _parse_optional_int(s: str) -> int | None:
    return None if s.lower() in ("none", "") else int(s)


def _parse_optional_str(s: str) -> str | None:
    return None if s.lower() in ("none", "") else s


def _parse_bool(s: str) -> bool:
    values = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if s.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")
    return values[s.lower()]


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field, in a group per part of the config; the retired ones refused."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for part, title in CONFIG_PARTS:
        group = p.add_argument_group(title)
        for name, doc in field_docs(part).items():
            f = fields[name]
            flags = FLAG_ALIASES.get(name, ["--" + name.replace("_", "-")])
            parsers: dict[str, Callable[[str], Any]] = {
                "int": int,
                "float": float,
                "str": str,
                "bool": _parse_bool,
                "int | None": _parse_optional_int,
                "str | None": _parse_optional_str,
            }
            kind = parsers.get(str(f.type), str)
            group.add_argument(
                *flags,
                dest=name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=name.upper(),
                help=f"{doc} (default: {f.default})".replace("%", "%%"),
            )
    for name in RETIRED:
        p.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=str, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def config_from_args(args: argparse.Namespace) -> tuple[Config, dict]:
    """The Config of a new run, and the fields given explicitly on the command line."""
    for name in RETIRED:
        if hasattr(args, name):
            raise UserError(
                f"--{name.replace('_', '-')} was retired in pongrl {__version__}; pongrl "
                f"{LAST_WITH_RETIRED} still has it (pip install 'pongrl=={LAST_WITH_RETIRED}')"
            )
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    base = Config.from_json_file(args.config).to_dict() if args.config else {}
    return Config.from_dict({**base, **given}), given
