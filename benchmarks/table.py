"""The table every benchmark prints: what, value, unit, target."""

Row = tuple[str, str, str, str]


def print_table(rows: list[Row]) -> None:
    """Print rows as a plain-text table with aligned columns (values right-aligned)."""
    header = ("what", "value", "unit", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for i, row in enumerate([header, *rows]):
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows under a header of any width, columns left-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
