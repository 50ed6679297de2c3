"""Regenerate `recsys/data/communes.csv.gz` from La Poste's official postal-code base.

The base ("Base officielle des codes postaux", Licence Ouverte / Etalab 2.0, source: La
Poste) lists one row per (commune, postal code, locality line); the shipped table keeps one
row per (INSEE code, postal code) with the commune's name and reference point, which is all
`recsys.places` reads. Run it when a new edition of the base is published:

    python scripts/build_communes.py PATH/laposte_hexasmal.csv

Names are kept as La Poste writes them (upper case, no accents, words separated by spaces),
except that a trailing article in brackets moves to the front ("ILE DES PINS (L')" becomes
"L ILE DES PINS"), so that a name typed in its usual order finds it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "recsys" / "data" / "communes.csv.gz"
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.*?)\s*\((?P<article>[^)]*)\)$")
DECIMALS = 5  # about a metre: the reference points are no more precise than that


def _front_article(name: str) -> str:
    match = _TRAILING_ARTICLE.match(name.strip())
    if match is None:
        return name.strip()
    article = match["article"].replace("'", " ").strip()
    return f"{article} {match['name']}".strip()


def build(source: Path) -> pd.DataFrame:
    """The compact table: insee, postal_code, name, lat, lon, sorted by postal code."""
    raw = pd.read_csv(source, sep=";", dtype=str, keep_default_na=False, encoding="utf-8")
    table = pd.DataFrame(
        {
            "insee": raw["Code_commune_INSEE"].str.strip().str.upper(),
            "postal_code": raw["Code_postal"].str.strip(),
            "name": raw["Nom_commune"].map(_front_article),
            "lat": pd.to_numeric(raw["latitude"], errors="coerce").round(DECIMALS),
            "lon": pd.to_numeric(raw["longitude"], errors="coerce").round(DECIMALS),
        }
    )
    table = table.dropna(subset=["lat", "lon"])
    table = table.drop_duplicates(["insee", "postal_code"], keep="first")
    return table.sort_values(["postal_code", "insee"]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="laposte_hexasmal.csv (';'-separated, UTF-8)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"source: {args.source} does not exist", file=sys.stderr)
        return 2
    table = build(args.source)
    # mtime=0: the same source gives the same bytes, so the file only changes with the data.
    table.to_csv(
        args.out, index=False, compression={"method": "gzip", "mtime": 0}, float_format="%.5f"
    )
    print(
        f"{args.out}: {len(table)} rows, {table['postal_code'].nunique()} postal codes, "
        f"{table['insee'].nunique()} communes"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
