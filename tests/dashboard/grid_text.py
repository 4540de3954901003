"""Read an AG Grid table in the browser as people see it: its rows in their shown order, cell by cell."""

from __future__ import annotations

SETTLED_MS = 30_000


def grid_rows(page, grid: str) -> list[dict[str, str]]:
    """Return a grid's rows in their shown order as {column id: cell text}."""
    page.wait_for_selector(f"{grid} .ag-row", timeout=SETTLED_MS)
    return page.evaluate("""(grid) => {
        const rows = {};
        for (const cell of document.querySelectorAll(grid + ' .ag-row .ag-cell')) {
            const row = cell.closest('.ag-row');
            const index = Number(row.getAttribute('row-index'));
            rows[index] = rows[index] || {};
            rows[index][cell.getAttribute('col-id')] = cell.innerText.replace(/\\s+$/, '');
        }
        return Object.keys(rows).map(Number).sort((a, b) => a - b).map(i => rows[i]);
    }""", grid)


def fits_its_width(page, grid: str) -> bool:
    """True when every column of a grid shows without scrolling sideways."""
    return page.evaluate("""(grid) => {
        const view = document.querySelector(grid + ' .ag-center-cols-viewport');
        return view.scrollWidth <= view.clientWidth + 1;
    }""", grid)
