"""Scrape a server's /metrics and read its samples by name and labels."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """Every sample of one /metrics answer: (name, sorted labels) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (KeyError when absent)."""
        return self.samples[(name, tuple(sorted(labels.items())))]

    def labelled(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of a name, by its labels."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def job_series(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The forgesyte_* samples (the ones computed from the store)."""
        return {key: v for key, v in self.samples.items() if key[0].startswith("forgesyte_")}


def scrape(url: str, api_key: str | None = None) -> Scrape:
    """GET /metrics (with the key, when given) and parse the Prometheus text format."""
    headers = {"X-API-Key": api_key} if api_key else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    response.raise_for_status()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return Scrape(samples)
