"""Decoding flavour extra specs / template attributes shared by all backends."""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

from .base import Accelerator

#: extra-spec keys for accelerators (cASO's and cloud-info-provider's conventions)
ACCELERATOR_KEYS = ("Accelerator:Type", "Accelerator:Vendor", "Accelerator:Model", "Accelerator:Number")
#: extra-spec keys for the benchmark of the hosts a flavour runs on
BENCHMARK_TYPE_KEY = "accounting:benchmark_type"
BENCHMARK_VALUE_KEY = "accounting:benchmark_value"


def decode_accelerator(specs: Mapping[str, str]) -> Optional[Accelerator]:
    """An accelerator when all four ``Accelerator:*`` keys are set (or ``pci_passthrough:alias`` GPUs)."""
    values = [specs.get(key) for key in ACCELERATOR_KEYS]
    if all(values):
        kind, vendor, model, number = (str(v) for v in values)
        try:
            count = int(number)
        except ValueError as exc:
            raise ValueError(f"extra spec Accelerator:Number must be an integer, got {number!r}") from exc
        return Accelerator(type=kind, vendor=vendor, model=model, count=count)
    return None


def decode_benchmark(specs: Mapping[str, str]) -> Tuple[Optional[str], Optional[float]]:
    """Benchmark type and value when both are set."""
    kind = specs.get(BENCHMARK_TYPE_KEY)
    value = specs.get(BENCHMARK_VALUE_KEY)
    if not kind or value in (None, ""):
        return None, None
    try:
        return str(kind), float(str(value))
    except ValueError as exc:
        raise ValueError(f"extra spec {BENCHMARK_VALUE_KEY} must be a number, got {value!r}") from exc


def decode_flavor_specs(specs: Mapping[str, str]) -> Tuple[Optional[Accelerator], Optional[str], Optional[float]]:
    """(accelerator, benchmark type, benchmark value) from a flavour's extra specs."""
    bench_type, bench_value = decode_benchmark(specs)
    return decode_accelerator(specs), bench_type, bench_value
