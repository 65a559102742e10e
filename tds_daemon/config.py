"""Configuration: a TOML file and ``TDS_<SECTION>_<KEY>`` environment overrides, checked against the schema.

Every setting is described once, in ``tds_daemon.settings``. Validation is done as a whole so
that an operator sees every bad key at once, and a bad file never half-applies.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tds_daemon import subscribers
from tds_daemon.redaction import mask_url
from tds_daemon.settings import ENV_PREFIX, SCHEMA, SECTIONS, ZOHO_CREDENTIALS, Setting

DEFAULT_PATH = "/etc/tds/tds.toml"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists ``(key, reason)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{k}: {why}" for k, why in problems))


_BY_NAME = {s.name: s for s in SCHEMA}


@dataclass(frozen=True)
class Config:
    """A validated configuration: ``config.api.bind``, ``config.get('api.bind')``."""

    values: Mapping[str, Any]
    source: str = "defaults"
    sources: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.values[name]

    def __getattr__(self, section: str) -> _Section:
        if section not in SECTIONS:
            raise AttributeError(section)
        return _Section(section, self.values)

    def redacted(self) -> dict[str, Any]:
        """Every value, safe to show: secrets as (set)/(not set), passwords inside URLs as ***."""
        return {
            s.name: ("(set)" if self.values[s.name] else "(not set)") if s.secret
            else subscribers.redacted(self.values[s.name]) if s.name == "events.subscribers"
            else mask_url(self.values[s.name]) if isinstance(self.values[s.name], str) else self.values[s.name]
            for s in SCHEMA
        }

    @property
    def subscribers(self) -> tuple[subscribers.Subscriber, ...]:
        """The configured event subscribers."""
        return subscribers.parse(self.values["events.subscribers"])

    def gaps(self) -> list[str]:
        """What a valid configuration still leaves refused or failing, one sentence each (empty: nothing)."""
        v = self.values
        said = []
        if not v["api.webhook_token"]:
            said.append("webhooks are refused until api.webhook_token is set")
        if not v["api.admin_token"]:
            said.append("the admin API and /dashboard are refused until api.admin_token is set")
        missing = [k for k in ZOHO_CREDENTIALS if not v[k]]
        if missing:
            said.append(f"pulls from Zoho (tds sync, the scheduled syncs, the detail backfill, stats) fail until "
                        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} set")
        return said

    # Derived values (kept here so that every process derives them the same way).
    @property
    def zoho_accounts_url(self) -> str:
        return self.values["zoho.accounts_url"] or f"https://accounts.zoho.{self.values['zoho.region']}"

    @property
    def zoho_books_url(self) -> str:
        return self.values["zoho.books_url"] or f"https://www.zohoapis.{self.values['zoho.region']}/books/v3"

    @property
    def zoho_inventory_url(self) -> str:
        return (self.values["zoho.inventory_url"]
                or f"https://www.zohoapis.{self.values['zoho.region']}/inventory/v1")


class _Section:
    def __init__(self, section: str, values: Mapping[str, Any]):
        self._section, self._values = section, values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[f"{self._section}.{key}"]
        except KeyError:
            raise AttributeError(f"{self._section}.{key}") from None


def resolve_path(path: str | None, environ: Mapping[str, str]) -> str | None:
    """--config, else $TDS_CONFIG, else /etc/tds/tds.toml if it exists, else None (defaults)."""
    if path:
        return path
    if environ.get("TDS_CONFIG"):
        return environ["TDS_CONFIG"]
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None


def _coerce(setting: Setting, raw: Any, from_env: bool) -> Any:
    kind = setting.kind
    if kind is list:
        if from_env:
            raise ValueError(f"cannot be set by the environment: write [[{setting.name}]] tables in the file")
        if not isinstance(raw, list):
            raise ValueError(f"must be written as [[{setting.name}]] tables")
        return tuple(raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and str(raw).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return str(raw).lower() in ("1", "true", "yes", "on")
        raise ValueError(f"must be true or false, got {raw!r}")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError(f"must be an integer, got {raw!r}")
        if isinstance(raw, int):
            return raw
        if from_env and str(raw).strip().lstrip("-").isdigit():
            return int(raw)
        raise ValueError(f"must be an integer, got {raw!r}")
    if kind is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if from_env:
            try:
                return float(raw)
            except ValueError:
                pass
        raise ValueError(f"must be a number, got {raw!r}")
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, got {raw!r}")
    return raw


def load(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate; raise ConfigError naming every bad key."""
    environ = os.environ if environ is None else environ
    path = resolve_path(path, environ)
    problems: list[tuple[str, str]] = []
    raw: dict[str, tuple[Any, bool, str]] = {}  # name -> (value, from_env, where)

    if path:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError([("config", f"file {path} does not exist")]) from None
        except PermissionError:
            raise ConfigError([("config", f"file {path} is not readable")]) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([("config", f"{path} is not valid TOML: {e}")]) from None
        for section, body in doc.items():
            if section not in SECTIONS:
                problems.append((section, f"unknown section in {path}"))
                continue
            if not isinstance(body, dict):
                problems.append((section, f"must be a [{section}] table in {path}"))
                continue
            for key, value in body.items():
                name = f"{section}.{key}"
                if name not in _BY_NAME:
                    problems.append((name, f"unknown key in {path}"))
                else:
                    raw[name] = (value, False, path)

    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or var == "TDS_CONFIG":
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # not a setting (e.g. a test harness variable); only known sections are checked
        name = f"{section}.{rest[len(section) + 1:]}"
        if name not in _BY_NAME:
            problems.append((name, f"unknown key set by environment variable {var}"))
        else:
            raw[name] = (value, True, var)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SCHEMA:
        if s.name not in raw:
            values[s.name] = s.default
            sources[s.name] = "default"
            continue
        value, from_env, where = raw[s.name]
        sources[s.name] = where
        try:
            value = _coerce(s, value, from_env)
        except ValueError as e:
            problems.append((s.name, f"{e} (from {where})" if not s.secret else f"wrong type (from {where})"))
            continue
        reasons = s.check(value) if s.check else None
        if reasons:
            for reason in [reasons] if isinstance(reasons, str) else reasons:
                problems.append((s.name, f"{reason.split(', got')[0] if s.secret else reason} (from {where})"))
            continue
        values[s.name] = value

    if not problems and values["workers.min_backoff_ms"] > values["workers.max_backoff_ms"]:
        problems.append(("workers.min_backoff_ms", "must not exceed workers.max_backoff_ms"))
    for level in ("monitoring.pending", "monitoring.dead_letter"):
        warning, critical = values.get(f"{level}_warning"), values.get(f"{level}_critical")
        if warning is not None and critical is not None and warning >= critical:
            problems.append((f"{level}_warning", f"must be below {level}_critical"))
    if problems:
        raise ConfigError(problems)
    return Config(values=values, source=path or "defaults", sources=sources)
