"""Cohort schemas: the public, clinician-reviewed description of one cohort layout.

Everything the generator needs to scale, bound and round values comes from here, so that no
statistic of the real data has to reach the model for free (see the privacy notes in README).
Schemas are YAML files in ``schemas/`` validated by the pydantic models below.
"""

from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clinsynth.errors import ClinsynthError, describe_validation_error

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


class VariableType(StrEnum):
    """How a value is distributed, which decides the likelihood the generator uses for it."""

    continuous = "continuous"
    integer = "integer"
    binary = "binary"
    categorical = "categorical"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Range = tuple[float, float]


def _check_range(value: Range | None, what: str) -> Range | None:
    if value is not None and not value[0] <= value[1]:
        raise ValueError(f"{what} must be [low, high] with low <= high, got {list(value)}")
    return value


class BaseField(_Strict):
    """A named quantity (static attribute, outcome or time-varying variable)."""

    name: str = Field(min_length=1)
    type: VariableType = VariableType.continuous
    unit: str = ""
    description: str = ""
    hard_limits: Range | None = Field(
        default=None, description="physiologically impossible outside [low, high]"
    )
    normal_range: Range | None = Field(default=None, description="soft reference range")
    precision: int | None = Field(default=None, ge=0, description="decimals kept on output")
    categories: list[int | float | str] | None = None
    transform: Literal["none", "log", "log1p"] = "none"
    inferred: bool = Field(
        default=False, description="drafted by `schema infer`: ranges need a clinician's review"
    )

    @field_validator("hard_limits")
    @classmethod
    def _hard(cls, v: Range | None) -> Range | None:
        return _check_range(v, "hard_limits")

    @field_validator("normal_range")
    @classmethod
    def _normal(cls, v: Range | None) -> Range | None:
        return _check_range(v, "normal_range")

    @model_validator(mode="after")
    def _consistent(self) -> BaseField:
        if self.type is VariableType.categorical and not self.categories:
            raise ValueError(f"{self.name}: a categorical field needs a list of categories")
        if self.type is VariableType.continuous and self.hard_limits is None:
            raise ValueError(f"{self.name}: a continuous field needs hard_limits")
        if self.transform != "none" and self.hard_limits is not None and self.hard_limits[0] < 0:
            raise ValueError(f"{self.name}: a log transform needs hard_limits >= 0")
        if (
            self.hard_limits is not None
            and self.normal_range is not None
            and not (
                self.hard_limits[0] <= self.normal_range[0]
                and self.normal_range[1] <= self.hard_limits[1]
            )
        ):
            raise ValueError(f"{self.name}: normal_range must lie inside hard_limits")
        return self

    @property
    def is_numeric_code(self) -> bool:
        """Binary and categorical values are stored as codes, not measured quantities."""
        return self.type in (VariableType.binary, VariableType.categorical)


class StaticField(BaseField):
    """An attribute fixed for the whole stay (age, sex, ICU type...)."""


class OutcomeField(BaseField):
    """A label known at the end of the stay (in-hospital death...)."""


class Variable(BaseField):
    """A time-varying vital sign or lab."""

    group: Literal["vital", "lab", "intervention", "other"] = "other"
    max_rate_per_hour: float | None = Field(
        default=None, gt=0, description="largest plausible change per hour, in the unit"
    )
    within_stay_sd: float | None = Field(
        default=None,
        gt=0,
        description=(
            "typical spread of one patient's values about their own mean, in the unit, for a "
            "variable that moves far less within a stay than between patients (weight); it "
            "only sets the scale its within-stay statistics are released on"
        ),
    )

    @model_validator(mode="after")
    def _within_stay_sd_untransformed(self) -> Variable:
        if self.within_stay_sd is None:
            return self
        if self.is_numeric_code:
            raise ValueError(f"{self.name}: within_stay_sd needs a measured quantity, not codes")
        if self.transform != "none":
            raise ValueError(
                f"{self.name}: within_stay_sd is in the variable's unit, so it needs "
                "transform: none"
            )
        return self


class Rule(_Strict):
    """A cross-variable rule checked on values measured in the same grid step.

    - ``less_than``: ``left`` < ``right``
    - ``between``: ``low`` <= ``target`` <= ``high``
    - ``implies``: when ``when`` equals ``equals``, ``then`` lies in ``range``
    """

    kind: Literal["less_than", "between", "implies"]
    description: str = ""
    left: str | None = None
    right: str | None = None
    target: str | None = None
    low: str | None = None
    high: str | None = None
    when: str | None = None
    equals: float | None = None
    then: str | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Rule:
        needed = {
            "less_than": ("left", "right"),
            "between": ("target", "low", "high"),
            "implies": ("when", "equals", "then", "range"),
        }[self.kind]
        missing = [n for n in needed if getattr(self, n) is None]
        if missing:
            raise ValueError(f"rule of kind {self.kind} needs {', '.join(missing)}")
        return self

    @property
    def variables(self) -> list[str]:
        names = [self.left, self.right, self.target, self.low, self.high, self.when, self.then]
        return [n for n in names if n is not None]

    @property
    def label(self) -> str:
        """How reports name the rule: its description, else the rule written out."""
        if self.description:
            return self.description
        if self.kind == "less_than":
            return f"{self.left} < {self.right}"
        if self.kind == "between":
            return f"{self.low} <= {self.target} <= {self.high}"
        return f"{self.when} = {self.equals:.4g} implies {self.then} in {list(self.range)}"


class Panel(_Strict):
    """Variables that one measurement yields together (one arterial-line reading, one blood
    sample sent for a panel): the generator draws whether they are measured jointly."""

    name: str
    variables: list[str] = Field(min_length=2)
    description: str = ""


class Layout(_Strict):
    """How the analyst's file is laid out; export writes back in the same layout."""

    format: Literal["long", "wide"] = "long"
    id_column: str
    time_column: str
    time_format: Literal["hours", "minutes", "hhmm", "timestamp"] = "hours"
    variable_column: str | None = Field(default=None, description="long layout only")
    value_column: str | None = Field(default=None, description="long layout only")
    missing_sentinels: list[float] = Field(default_factory=list)
    ignore_variables: list[str] = Field(
        default_factory=list, description="rows/columns dropped silently (e.g. an id echo)"
    )
    outcomes_file: bool = Field(
        default=False,
        description="outcomes come in a separate file keyed by id_column (PhysioNet style)",
    )

    @model_validator(mode="after")
    def _long_needs_columns(self) -> Layout:
        if self.format == "long" and (self.variable_column is None or self.value_column is None):
            raise ValueError("a long layout needs variable_column and value_column")
        return self


class Grid(_Strict):
    """The regular time grid the generator works on (observations are binned onto it)."""

    step_hours: float = Field(default=1.0, gt=0)
    horizon_hours: float = Field(default=48.0, gt=0)

    @property
    def n_steps(self) -> int:
        return round(self.horizon_hours / self.step_hours)


class Schema(_Strict):
    """One cohort layout: columns, statics, outcomes, variables, rules and grid."""

    name: str
    version: str = "1"
    description: str = ""
    layout: Layout
    grid: Grid = Grid()
    statics: list[StaticField] = Field(default_factory=list)
    outcomes: list[OutcomeField] = Field(default_factory=list)
    variables: list[Variable] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    panels: list[Panel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> Schema:
        for group in (self.statics, self.outcomes, self.variables):
            names = [f.name for f in group]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"duplicate names: {sorted(dup)}")
        clash = {o.name for o in self.outcomes} & (
            {s.name for s in self.statics} | {v.name for v in self.variables}
        )
        if clash:
            raise ValueError(f"outcome names also used as statics/variables: {sorted(clash)}")
        known = set(self.variable_names)
        for rule in self.rules:
            unknown = [n for n in rule.variables if n not in known]
            if unknown:
                raise ValueError(f"rule names unknown variables: {unknown}")
        in_panels = [n for panel in self.panels for n in panel.variables]
        unknown = [n for n in in_panels if n not in known]
        if unknown:
            raise ValueError(f"panel names unknown variables: {unknown}")
        twice = sorted({n for n in in_panels if in_panels.count(n) > 1})
        if twice:
            raise ValueError(f"variables in more than one panel: {twice}")
        return self

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def static_names(self) -> list[str]:
        return [s.name for s in self.statics]

    @property
    def outcome_names(self) -> list[str]:
        return [o.name for o in self.outcomes]

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    def field(self, name: str) -> BaseField:
        """Any static, outcome or variable by name (statics win over a same-named variable)."""
        for f in [*self.statics, *self.outcomes, *self.variables]:
            if f.name == name:
                return f
        raise KeyError(name)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON form: recorded in manifests."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def schema_search_path() -> list[Path]:
    extra = os.environ.get("CLINSYNTH_SCHEMAS")
    return ([Path(extra)] if extra else []) + [SCHEMA_DIR]


def available_schemas() -> list[str]:
    names: set[str] = set()
    for d in schema_search_path():
        if d.is_dir():
            names |= {p.stem for p in d.glob("*.yaml")}
    return sorted(names)


def resolve_schema_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ClinsynthError(f"Schema file {p} does not exist.")
        return p
    for d in schema_search_path():
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise ClinsynthError(
        f"Unknown schema '{name_or_path}'. Known schemas: "
        f"{', '.join(available_schemas()) or 'none'}; or give the path of a .yaml file."
    )


def parse_schema(data: dict, source: str = "<dict>") -> Schema:
    try:
        return Schema.model_validate(data)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise ClinsynthError(f"Schema {source} is not valid: {problems}") from None


def _refuse_placeholders(path: Path, text: str) -> None:
    """A `schema infer` draft keeps ``TODO_…`` placeholders until a clinician fills the ranges."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "TODO_" in line.split("#", 1)[0]]
    if lines:
        shown = ", ".join(str(n) for n in lines[:12]) + (" …" if len(lines) > 12 else "")
        raise ClinsynthError(
            f"Schema {path} is an unfinished draft from `clinsynth schema infer`: {len(lines)} "
            f"line(s) still hold TODO_ placeholders (lines {shown}). Replace each with a "
            "clinically sourced value (hard_limits are physiologically impossible bounds, never "
            "the data's own min/max), review the guessed types, then load it again."
        )


def load_schema(name_or_path: str | Path) -> Schema:
    """Load a schema by name (from ``schemas/``) or by path, with a clear error if it is invalid."""
    path = resolve_schema_path(name_or_path)
    text = path.read_text()
    _refuse_placeholders(path, text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClinsynthError(f"Schema {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ClinsynthError(f"Schema {path} must be a YAML mapping at the top level.")
    base_name = data.pop("extends", None)
    if base_name is not None:
        # A schema may reuse another's variables and override top-level keys (e.g. its layout):
        # the sample data shares PhysioNet 2012's variable set but not its file layout.
        base = load_schema(base_name).model_dump(mode="json")
        data = {**base, **data}
    return parse_schema(data, str(path))


def dump_schema(schema: Schema) -> str:
    return yaml.safe_dump(schema.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
