"""Counters, gauges and histograms rendered in the Prometheus text exposition format 0.0.4 — generic,
no HTTP, no dependency (could move into the library).

Theory of operation
-------------------
A metric is a family: a name, a help text, a type and fixed label names; each distinct tuple of
label values is one series, kept in a plain dict (label tuple → value). Updating a series is a
dict lookup and an add — cheap enough for every request — and nothing is formatted until a
scrape calls `Registry.render`.

A `Histogram` keeps, per series, one *non-cumulative* count per bucket (found with ``bisect``)
plus the ``+Inf`` overflow, the sum and the count; rendering turns the counts into the
cumulative ``_bucket{le="..."}`` series the format requires, ending with ``le="+Inf"`` equal to
``_count``.

Output follows https://prometheus.io/docs/instrumenting/exposition_formats/ (text 0.0.4): one
``# HELP`` and one ``# TYPE`` line per family before its samples; label values escape ``\\``,
``"`` and newline; help text escapes ``\\`` and newline; values are Go-style floats
(``+Inf``, ``NaN``); lines end with ``\\n``, including the last. Serve it with `CONTENT_TYPE`.

Everything here belongs to one worker process (one reactor thread): no locks. Each worker exposes
its own series, labelled with the worker; Prometheus (or a query with ``sum by``) adds them up.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Iterable, Sequence

from vanilla_async import ConfigError

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricError(ConfigError):
    """A metric was declared or used in a way the exposition format cannot express."""


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: integers without a fraction, ``+Inf``, ``-Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _Family:
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        if _NAME.fullmatch(name) is None:
            raise MetricError(f"metric name {name!r} must match [a-zA-Z_:][a-zA-Z0-9_:]*")
        for label in labels:
            if _LABEL.fullmatch(label) is None or label.startswith("__") or label == "le":
                raise MetricError(f"label name {label!r} must match [a-zA-Z_][a-zA-Z0-9_]*, not start with __, "
                                  "and not be 'le'")
        self.name = name
        self.help = help
        self.labels = tuple(labels)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labels):
            raise MetricError(f"{self.name} has labels {self.labels}, got values {values!r}")

    def _labels(self, values: tuple[str, ...], extra: str = "") -> str:
        pairs = [f'{name}="{escape_label(value)}"' for name, value in zip(self.labels, values)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    """A monotonically increasing count; the name should end in ``_total``."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, values: tuple[str, ...] = (), amount: float = 1.0) -> None:
        if amount < 0:
            raise MetricError(f"counter {self.name} can only go up; got inc({amount})")
        current = self.values.get(values)
        if current is None:
            self._check(values)
            current = 0.0
        self.values[values] = current + amount

    def samples(self) -> list[str]:
        return [f"{self.name}{self._labels(k)} {format_value(v)}" for k, v in sorted(self.values.items())]


class Gauge(_Family):
    """A value that goes up and down."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, values: tuple[str, ...] = (), amount: float = 1.0) -> None:
        current = self.values.get(values)
        if current is None:
            self._check(values)
            current = 0.0
        self.values[values] = current + amount

    def set(self, values: tuple[str, ...], value: float) -> None:
        self._check(values)
        self.values[values] = value

    def samples(self) -> list[str]:
        return [f"{self.name}{self._labels(k)} {format_value(v)}" for k, v in sorted(self.values.items())]


class Histogram(_Family):
    """Observations counted into fixed buckets (upper bounds, ``le``), with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help, labels)
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(not a < b for a, b in zip(bounds, bounds[1:])) or not all(math.isfinite(b) for b in bounds):
            raise MetricError(
                f"histogram {name} needs finite, strictly increasing buckets (+Inf is implicit), got {bounds}")
        self.bounds = bounds
        self._le = [f'le="{b!r}"' for b in bounds] + ['le="+Inf"']  # 0.005, 1.0: any float syntax is valid
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}  # values -> (counts, [sum, count])

    def declare(self, values: tuple[str, ...] = ()) -> None:
        """Create the series for ``values`` with zero counts, so it is exposed before any observation."""
        if values not in self.series:
            self._check(values)
            self.series[values] = ([0] * (len(self.bounds) + 1), [0.0, 0.0])

    def observe(self, values: tuple[str, ...], value: float) -> None:
        series = self.series.get(values)
        if series is None:
            self._check(values)
            series = self.series[values] = ([0] * (len(self.bounds) + 1), [0.0, 0.0])
        series[0][bisect.bisect_left(self.bounds, value)] += 1  # first bound >= value: "le" is inclusive
        totals = series[1]
        totals[0] += value
        totals[1] += 1

    def samples(self) -> list[str]:
        lines: list[str] = []
        for values, (counts, (total, count)) in sorted(self.series.items()):
            running = 0
            for le, n in zip(self._le, counts):
                running += n
                lines.append(f"{self.name}_bucket{self._labels(values, le)} {running}")
            lines.append(f"{self.name}_sum{self._labels(values)} {format_value(total)}")
            lines.append(f"{self.name}_count{self._labels(values)} {format_value(count)}")
        return lines


class Registry:
    """The families one worker exposes, rendered in the order they were added."""

    def __init__(self) -> None:
        self.families: list[_Family] = []

    def add(self, family: _Family) -> None:
        if any(f.name == family.name for f in self.families):
            raise MetricError(f"metric {family.name!r} is already registered")
        self.families.append(family)

    def render(self) -> bytes:
        lines: list[str] = []
        for family in self.families:
            lines += family.header()
            lines += family.samples()
        return ("\n".join(lines) + "\n").encode("utf-8")
