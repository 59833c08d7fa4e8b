#!/usr/bin/env python3
"""Independent check of the sales explorer's chart callback.

Re-implements, from the written specification only, the synthetic sales table and the
revenue-by-product-and-month aggregation, and prints for one region and year range what
the chart must show, as JSON:

    {"title": "...", "rows": N, "months": {"Jan": [20 dollar totals], ...}}

Usage: check.py REGION FROM [TO]     e.g.  check.py North 2015 2024,  check.py Pacific 2019

A reversed range is swapped, like the app does. Standard library only.
"""

import json
import sys

MASK = (1 << 64) - 1
REGIONS = ["North", "South", "East", "West", "Central", "Northeast", "Southwest", "Pacific"]
PRODUCTS = ["P%02d" % n for n in range(1, 21)]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ROWS = 100_000
SEED = 42


def draws(seed):
    """splitmix64: an endless stream of 64-bit outputs."""
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def rows():
    """The table, one (region, product, year, month, revenue in cents) tuple per row."""
    stream = draws(SEED)
    for _ in range(ROWS):
        region = REGIONS[next(stream) % 8]
        product = next(stream) % 20
        year = 2015 + next(stream) % 10
        month = next(stream) % 12
        units = 1 + next(stream) % 50
        price_cents = 500 + next(stream) % 9501
        yield region, product, year, month, units * price_cents


def report(region, first, last):
    first, last = min(first, last), max(first, last)
    cents = [[0] * 20 for _ in MONTHS]
    kept = 0
    for row_region, product, year, month, revenue in rows():
        if row_region == region and first <= year <= last:
            cents[month][product] += revenue
            kept += 1
    return {
        "title": "Revenue by product, %s %d-%d (%d rows)" % (region, first, last, kept),
        "rows": kept,
        "months": {name: [c / 100 for c in cents[m]] for m, name in enumerate(MONTHS)},
    }


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    region, first = argv[1], int(argv[2])
    last = int(argv[3]) if len(argv) == 4 else first
    print(json.dumps(report(region, first, last)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
