"""What each fault test measured, printed on one line (`pytest -s` shows them):
the figures the operations guide and the issue notes quote."""

from __future__ import annotations


def report(fault: str, **figures: object) -> None:
    shown = ", ".join(
        f"{name.replace('_', ' ')} {_shown(value)}" for name, value in figures.items()
    )
    print(f"\n[fault] {fault}: {shown}")


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.2f} s"
    if isinstance(value, list | tuple):
        return "/".join(_shown(v) for v in value)
    return str(value)
