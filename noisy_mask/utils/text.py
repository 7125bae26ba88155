"""Words of the messages and summaries the tools print."""


def plural(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1: plural(1, "problem") -> "1 problem", "3 problems"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
