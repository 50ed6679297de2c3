"""Offer and user encoders: canonical rows → sparse features, shared by training and serving.

The feature stage fits the encoders on the training window only and saves them next to the
feature set; the service loads the same files to encode a new offer or an anonymous quiz
profile, so a model sees identical columns offline and online.

Rules every block follows:
    * a categorical column exists only if its value was seen when fitting (a column never seen
      in training carries no learned weight, and in an embedding model only random noise);
      unseen or missing values at transform time simply set no column, never raise;
    * fitted state is plain data (vocabularies as JSON, the idf vector as .npz loaded with
      allow_pickle=False), never a pickle.

One-hot and multi-hot blocks are hand-built from vocabulary lookups (a hashed pandas Index
for tables, a dict for a request's few rows) rather than with scikit-learn's OneHotEncoder /
MultiLabelBinarizer: MultiLabelBinarizer loops in Python per row and warns on unknown labels,
OneHotEncoder takes no list-valued fields, and one lookup mechanism serves single and
list-valued fields alike with vocabularies that serialise to JSON as they are.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recsys.arrays import row_flag, row_number, row_text, row_values
from recsys.schema import CANDIDATE_AGE_BAND_EDGES
from recsys.typed_config import DictConfig

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ONE_ROW_MATRICES = 4096  # profiles' feature combinations whose one-row matrix is kept
OFFER_ENCODER_FILE = "offer_encoder.json"
OFFER_IDF_FILE = "offer_encoder_idf.npz"
USER_ENCODER_FILE = "user_encoder.json"

# A block of columns: (rows, columns, values, width).
_Part = tuple[np.ndarray, np.ndarray, np.ndarray, int]

# Letters only, two or more: drops numbers, dates and one-letter elisions ("l'", "d'").
_TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


def normalise_text(texts: pd.Series | list[str]) -> list[str]:
    """Lower case without accents ("Été" → "ete"), nulls as "".

    Done column-wise in Arrow (NFKD, then combining marks removed) rather than by
    scikit-learn's `strip_accents="unicode"`, which loops in Python over every character and
    dominated the build on large catalogs; the result is the same.
    """
    array = pa.array(np.asarray(texts, dtype=object), type=pa.large_string(), from_pandas=True)
    array = pc.utf8_normalize(pc.fill_null(array, ""), "NFKD")
    return pc.utf8_lower(pc.replace_substring_regex(array, r"\p{Mn}+", "")).to_pylist()


@cache
def french_stop_words() -> tuple[str, ...]:
    """The shipped French stop words, normalised like the vectorized text.

    The vectorizer filters stop words after preprocessing, so the list must go through the
    same lower-casing and accent stripping or "été" would never match "ete".
    """
    text = resources.files("recsys.data").joinpath("stopwords_fr.txt").read_text("utf-8")
    words = [w for w in (line.strip() for line in text.splitlines()) if w and w[0] != "#"]
    return tuple(sorted(set(normalise_text(words))))


# --- Blocks -------------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


# Below this many rows (a request's one profile or offer), plain dict lookups beat pandas'
# per-call overhead tenfold; above it, vectorised pandas wins.
_SMALL = 32


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _flatten(lists: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, values) of a column of lists; null or empty lists give no pair."""
    if len(lists) <= _SMALL:
        pairs = [
            (row, value)
            for row, values in enumerate(lists.to_numpy(dtype=object))
            if _is_list(values)
            for value in values
            if value is not None
        ]
        rows = np.array([row for row, _ in pairs], dtype=np.int64)
        return rows, np.array([value for _, value in pairs], dtype=object)
    array = pa.array(lists.to_numpy(dtype=object), type=pa.list_(pa.string()), from_pandas=True)
    values = pc.list_flatten(array)
    rows = pc.list_parent_indices(array).to_numpy().astype(np.int64)
    present = pc.is_valid(values).to_numpy(zero_copy_only=False)
    return rows[present], values.to_numpy(zero_copy_only=False).astype(object)[present]


def _vocabulary(values: np.ndarray | pd.Series, min_count: int) -> list[str]:
    counts = pd.Series(values, dtype=object).dropna().astype(str).value_counts()
    return sorted(counts.index[counts >= min_count].tolist())


class _Lookup:
    """A vocabulary's value → column map, built once and reused by every transform."""

    def __init__(self, vocabulary: list[str]) -> None:
        self.index = pd.Index(vocabulary, dtype=object)
        self.positions = {value: i for i, value in enumerate(vocabulary)}

    def __len__(self) -> int:
        return len(self.positions)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Column of each value, -1 for null or unseen."""
        if len(values) <= _SMALL:
            found = [self.positions.get(v, -1) if isinstance(v, str) else -1 for v in values]
            return np.array(found, dtype=np.int64)
        return self.index.get_indexer(values)


@dataclass(frozen=True)
class _Block:
    """One named group of columns: `single` (one value per row) or `multi` (a list per row)."""

    name: str  # feature-name prefix and vocabulary key
    column: str
    kind: str  # "single" | "multi"

    def fit(self, frame: pd.DataFrame, min_count: int) -> list[str]:
        values = frame[self.column]
        if self.kind == "multi":
            values = _flatten(values)[1]
        return _vocabulary(values, min_count)

    def encode(self, frame: pd.DataFrame, lookup: _Lookup) -> _Part:
        """The block's ones; null or unseen values set none, a list repeating a value one."""
        if self.kind == "multi":
            rows, values = _flatten(frame[self.column])
        else:
            rows, values = np.arange(len(frame)), frame[self.column].to_numpy(dtype=object)
        codes = lookup.codes(np.asarray(values, dtype=object))
        keep = codes >= 0
        rows, cols = rows[keep].astype(np.int64), codes[keep].astype(np.int64)
        if self.kind == "multi":  # merge repeats: scipy sums duplicates in linear time
            shape = (len(frame), len(lookup))
            block = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
            block = block.tocoo()
            rows, cols = block.row.astype(np.int64), block.col.astype(np.int64)
        return rows, cols, np.ones(len(rows), np.float32), len(lookup)


def _assemble(n_rows: int, parts: list[_Part]) -> sp.csr_matrix:
    """Stack (rows, cols, values, width) blocks side by side into one float32 CSR matrix.

    Each block holds at most one value per (row, col), so no entry is summed.
    """
    offset = 0
    all_rows, all_cols, all_vals = [], [], []
    for rows, cols, values, width in parts:
        all_rows.append(rows)
        all_cols.append(cols + offset)
        all_vals.append(values.astype(np.float32))
        offset += width
    matrix = sp.coo_matrix(
        (np.concatenate(all_vals), (np.concatenate(all_rows), np.concatenate(all_cols))),
        shape=(n_rows, offset),
        dtype=np.float32,
    )
    return matrix.tocsr()


def _flag_block(mask: np.ndarray) -> _Part:
    rows = np.flatnonzero(mask)
    return rows, np.zeros(len(rows), np.int64), np.ones(len(rows), np.float32), 1


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True), "utf-8")


def _read_json(path: Path, kind: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{kind}: {path} not found")
    payload = json.loads(path.read_text("utf-8"))
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{kind}: {path} has format {payload.get('format')!r}, expected 1")
    return payload


# --- Offers -------------------------------------------------------------------------------------


@dataclass
class OfferEncoderConfig(DictConfig):
    """How offers are encoded.

    `text_weight` scales the L2-normalised TF-IDF block (norm 1 per offer before scaling),
    while an offer's structured block has about eight ones (norm near 2.8): at 0.5 the words
    refine rather than swamp programme, domain, activity and place.
    """

    text_max_features: int = 2000
    text_min_df: int = 2
    text_max_df: float = 0.9
    text_weight: float = 0.5
    min_category_count: int = 1
    normalize_rows: bool = False


class OfferEncoder:
    """Offers table → CSR float32 (programme, domain, activities, remote, minors, SNU,
    department, pay, TF-IDF of title and description).

    Fit on the offers posted before the cutoff only; transform any offers table, new offers
    included (their unseen values set no column).
    """

    _BLOCKS: ClassVar[tuple[_Block, ...]] = (
        _Block("programme", "type", "single"),
        _Block("domain", "domain", "single"),
        _Block("activity", "activities", "multi"),
        _Block("remote", "remote", "single"),
        _Block("department", "departmentCode", "single"),
    )
    _MINORS: ClassVar[tuple[str, ...]] = ("yes", "no", "missing")
    # Compensation buckets on a log10 scale of the amount as published (any unit).
    _PAY_BUCKETS: ClassVar[tuple[str, ...]] = ("<10", "10-100", "100-1000", ">=1000")
    COLUMNS: ClassVar[list[str]] = [
        "title",
        "description",
        "type",
        "domain",
        "activities",
        "remote",
        "departmentCode",
        "openToMinors",
        "snu",
        "compensationAmount",
    ]

    def __init__(self, config: OfferEncoderConfig | None = None) -> None:
        self.config = config if config is not None else OfferEncoderConfig()
        self.vocabularies: dict[str, list[str]] | None = None
        self._lookups: dict[str, _Lookup] = {}
        self._vectorizer: TfidfVectorizer | None = None
        self._terms: list[str] = []

    def _set_vocabularies(self, vocabularies: dict[str, list[str]]) -> None:
        self.vocabularies = vocabularies
        self._lookups = {name: _Lookup(values) for name, values in vocabularies.items()}

    def _new_vectorizer(self, vocabulary: list[str] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            lowercase=False,  # `_text` already lower-cased and stripped accents
            strip_accents=None,
            stop_words=list(french_stop_words()),
            token_pattern=_TOKEN_PATTERN,
            max_features=self.config.text_max_features,
            min_df=self.config.text_min_df,
            max_df=self.config.text_max_df,
            sublinear_tf=True,
            norm="l2",
            dtype=np.float32,
            vocabulary=vocabulary,
        )

    @staticmethod
    def _text(offers: pd.DataFrame) -> list[str]:
        title = offers["title"].fillna("").astype(str)
        return normalise_text(title + " " + offers["description"].fillna("").astype(str))

    def fit(self, offers: pd.DataFrame) -> Self:
        """Learn vocabularies and idf from `offers` (the training window's offers only)."""
        self._fit(offers)
        return self

    def fit_transform(self, offers: pd.DataFrame) -> sp.csr_matrix:
        """`fit(offers)` then `transform(offers)`, tokenising the texts once."""
        return self._encode(offers, self._fit(offers))

    def _fit(self, offers: pd.DataFrame) -> sp.csr_matrix | None:
        """Fit; returns the fitted offers' TF-IDF rows (None without a text block)."""
        _require(offers, self.COLUMNS, "OfferEncoder.fit")
        min_count = self.config.min_category_count
        self._set_vocabularies({b.name: b.fit(offers, min_count) for b in self._BLOCKS})
        self._vectorizer, self._terms = None, []
        text = None
        if self.config.text_max_features > 0 and len(offers):
            vectorizer = self._new_vectorizer()
            try:
                text = vectorizer.fit_transform(self._text(offers))
            except ValueError as error:  # too few offers for min_df/max_df, or no words left
                logger.warning("offer text not encoded: %s", error)
            else:
                self._vectorizer = vectorizer
                self._terms = vectorizer.get_feature_names_out().tolist()
        logger.info(
            "offer encoder fitted on %d offers: %d features (%d text terms)",
            len(offers),
            self.n_features,
            len(self._terms),
        )
        return text

    def _check_fitted(self) -> dict[str, list[str]]:
        if self.vocabularies is None:
            raise ValueError("OfferEncoder is not fitted: call fit() or load() first")
        return self.vocabularies

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def text_terms(self) -> list[str]:
        """The TF-IDF vocabulary in column order (empty when no text block)."""
        return list(self._terms)

    @property
    def feature_names(self) -> list[str]:
        vocabularies = self._check_fitted()
        names = [f"{b.name}={v}" for b in self._BLOCKS for v in vocabularies[b.name]]
        names += [f"openToMinors={v}" for v in self._MINORS]
        names += ["snu", "paid"]
        names += [f"compensation={v}" for v in self._PAY_BUCKETS]
        names += [f"text={term}" for term in self._terms]
        return names

    def transform(self, offers: pd.DataFrame) -> sp.csr_matrix:
        """Encode any offers table (rows in order) as CSR float32 (n_offers, n_features)."""
        self._check_fitted()
        _require(offers, self.COLUMNS, "OfferEncoder.transform")
        text = None
        if self._vectorizer is not None:
            text = self._vectorizer.transform(self._text(offers))
        return self._encode(offers, text)

    def _encode(self, offers: pd.DataFrame, text: sp.spmatrix | None) -> sp.csr_matrix:
        n = len(offers)
        parts = []
        for block in self._BLOCKS:
            lookup = self._lookups[block.name]
            parts.append(block.encode(offers, lookup))
        minors = pd.array(offers["openToMinors"].to_numpy(dtype=object), dtype="boolean")
        yes = minors.fillna(False).to_numpy(dtype=bool)
        minors_code = np.where(np.asarray(minors.isna()), 2, np.where(yes, 0, 1))
        parts.append((np.arange(n), minors_code, np.ones(n, np.float32), 3))
        parts.append(_flag_block(offers["snu"].fillna(False).astype(bool).to_numpy()))
        amount = pd.to_numeric(offers["compensationAmount"], errors="coerce").to_numpy(float)
        paid = np.nan_to_num(amount, nan=0.0) > 0
        parts.append(_flag_block(paid))
        rows = np.flatnonzero(paid)
        bucket = np.clip(np.floor(np.log10(amount[rows])), 0, len(self._PAY_BUCKETS) - 1)
        parts.append((rows, bucket.astype(np.int64), np.ones(len(rows), np.float32), 4))
        if text is not None:
            text = text.tocoo()
            weight = np.float32(self.config.text_weight)
            parts.append((text.row, text.col, text.data * weight, len(self._terms)))
        matrix = _assemble(n, parts)
        if self.config.normalize_rows:
            from sklearn.preprocessing import normalize

            matrix = normalize(matrix, norm="l2", copy=False).astype(np.float32)
        return matrix

    def save(self, folder: Path | str) -> None:
        """Write `offer_encoder.json` (config, vocabularies, terms) and the idf as .npz."""
        vocabularies = self._check_fitted()
        folder = Path(folder)
        payload = {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "vocabularies": vocabularies,
            "text_terms": self._terms,
        }
        _write_json(folder / OFFER_ENCODER_FILE, payload)
        idf = self._vectorizer.idf_ if self._vectorizer is not None else np.zeros(0)
        np.savez(folder / OFFER_IDF_FILE, idf=np.asarray(idf, dtype=np.float64))

    @classmethod
    def load(cls, folder: Path | str) -> Self:
        """Rebuild a saved encoder without refitting.

        The TF-IDF transform is rebuilt from the stored vocabulary and idf: a TfidfVectorizer
        given `vocabulary=` (fixing the column order) needs no fit for its counting step, and
        setting its `idf_` restores the (1 + log tf) · idf weighting and L2 norm exactly.
        """
        folder = Path(folder)
        payload = _read_json(folder / OFFER_ENCODER_FILE, "OfferEncoder")
        encoder = cls(OfferEncoderConfig.from_dict(payload["config"]))
        encoder._set_vocabularies({k: list(v) for k, v in payload["vocabularies"].items()})
        encoder._terms = list(payload["text_terms"])
        with np.load(folder / OFFER_IDF_FILE, allow_pickle=False) as stored:
            idf = stored["idf"]
        if len(idf) != len(encoder._terms):
            raise ValueError(f"OfferEncoder: {len(idf)} idf values for {len(encoder._terms)} terms")
        if encoder._terms:
            vectorizer = encoder._new_vectorizer(vocabulary=encoder._terms)
            vectorizer.idf_ = idf
            encoder._vectorizer = vectorizer
        return encoder


# --- Users --------------------------------------------------------------------------------------


@dataclass
class UserEncoderConfig(DictConfig):
    """How profiles are encoded; `age_band_edges` are the lower bounds of bands after the first
    (defaults: <16, 16-17, 18-20, 21-25, 26-30, 31+, plus unknown)."""

    age_band_edges: tuple[int, ...] = CANDIDATE_AGE_BAND_EDGES
    min_category_count: int = 1


class UserEncoder:
    """Profiles table → CSR float32 (age band, region, department, disability, quiz answers,
    rhythm, mobility).

    Fit on the profiles of training users; transform any profiles table, including a single
    anonymous quiz profile at request time (vectorised, no refit).
    """

    _BLOCKS: ClassVar[tuple[_Block, ...]] = (
        _Block("region", "region", "single"),
        _Block("department", "departmentCode", "single"),
        _Block("quizDomain", "quizDomains", "multi"),
        _Block("quizActivity", "quizActivities", "multi"),
        _Block("quizMotivation", "quizMotivations", "multi"),
        _Block("quizRhythm", "quizRhythm", "single"),
        _Block("mobility", "mobility", "single"),
    )
    COLUMNS: ClassVar[list[str]] = [
        "age",
        "region",
        "departmentCode",
        "disability",
        "hasQuiz",
        "quizDomains",
        "quizActivities",
        "quizMotivations",
        "quizRhythm",
        "mobility",
    ]

    def __init__(self, config: UserEncoderConfig | None = None) -> None:
        self.config = config if config is not None else UserEncoderConfig()
        edges = list(self.config.age_band_edges)
        if not edges or edges != sorted(set(edges)):
            raise ValueError(f"UserEncoderConfig.age_band_edges must increase strictly: {edges}")
        self.vocabularies: dict[str, list[str]] | None = None
        self._lookups: dict[str, _Lookup] = {}

    def _set_vocabularies(self, vocabularies: dict[str, list[str]]) -> None:
        self.vocabularies = vocabularies
        self._lookups = {name: _Lookup(values) for name, values in vocabularies.items()}
        self._one_row = lru_cache(maxsize=ONE_ROW_MATRICES)(
            lambda columns: self._rows_matrix([np.array(columns, dtype=np.int64)])
        )

    @property
    def age_bands(self) -> list[str]:
        edges = list(self.config.age_band_edges)
        bands = [f"<{edges[0]}"]
        bands += [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)]
        return [*bands, f"{edges[-1]}+", "unknown"]

    def fit(self, profiles: pd.DataFrame) -> Self:
        """Learn the category vocabularies from the training users' profiles."""
        _require(profiles, self.COLUMNS, "UserEncoder.fit")
        min_count = self.config.min_category_count
        self._set_vocabularies({b.name: b.fit(profiles, min_count) for b in self._BLOCKS})
        logger.info(
            "user encoder fitted on %d profiles: %d features", len(profiles), self.n_features
        )
        return self

    def _check_fitted(self) -> dict[str, list[str]]:
        if self.vocabularies is None:
            raise ValueError("UserEncoder is not fitted: call fit() or load() first")
        return self.vocabularies

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def feature_names(self) -> list[str]:
        vocabularies = self._check_fitted()
        names = [f"age={band}" for band in self.age_bands]
        names += [f"{b.name}={v}" for b in self._BLOCKS for v in vocabularies[b.name]]
        return [*names, "disability", "hasQuiz"]

    def transform(self, profiles: pd.DataFrame) -> sp.csr_matrix:
        """Encode any profiles table (rows in order) as CSR float32 (n_profiles, n_features)."""
        self._check_fitted()
        _require(profiles, self.COLUMNS, "UserEncoder.transform")
        n = len(profiles)
        age = pd.to_numeric(profiles["age"], errors="coerce").to_numpy(dtype=float)
        edges = np.asarray(self.config.age_band_edges, dtype=float)
        band = np.searchsorted(edges, age, side="right")
        band[np.isnan(age)] = len(edges) + 1
        parts = [(np.arange(n), band.astype(np.int64), np.ones(n, np.float32), len(edges) + 2)]
        for block in self._BLOCKS:
            lookup = self._lookups[block.name]
            parts.append(block.encode(profiles, lookup))
        parts.append(_flag_block(profiles["disability"].fillna(False).astype(bool).to_numpy()))
        parts.append(_flag_block(profiles["hasQuiz"].fillna(False).astype(bool).to_numpy()))
        return _assemble(n, parts)

    def row_columns(self, row: Mapping[str, Any]) -> np.ndarray:
        """Sorted int64 indices of the features `transform` sets to 1 for one canonical
        profile row (a dict; every feature value is 1): the few-row path of a request,
        without the DataFrame whose building costs more than the row's whole ranking."""
        self._check_fitted()
        edges = self.config.age_band_edges
        age = row_number(row["age"])
        found = [len(edges) + 1 if np.isnan(age) else int(np.searchsorted(edges, age, "right"))]
        offset = len(edges) + 2
        for block in self._BLOCKS:
            lookup = self._lookups[block.name]
            value = row[block.column]
            given = row_values(value) if block.kind == "multi" else [row_text(value)]
            found.extend(offset + lookup.positions[v] for v in given if v in lookup.positions)
            offset += len(lookup)
        for flag in ("disability", "hasQuiz"):
            if row_flag(row[flag]):
                found.append(offset)
            offset += 1
        return np.array(sorted(set(found)), dtype=np.int64)

    def transform_rows(self, rows: list[Mapping[str, Any]]) -> sp.csr_matrix:
        """`transform` of canonical profile rows (dicts), (n_rows, n_features), from
        `row_columns`. The matrix of a lone row is shared by every request with the same
        features (callers never write to it): scipy's checks when building one cost more
        than the row itself."""
        columns = [self.row_columns(row) for row in rows]
        if len(columns) == 1:
            return self._one_row(tuple(columns[0].tolist()))
        return self._rows_matrix(columns)

    def _rows_matrix(self, columns: list[np.ndarray]) -> sp.csr_matrix:
        indptr = np.cumsum([0, *(len(c) for c in columns)])
        indices = np.concatenate(columns) if columns else np.zeros(0, np.int64)
        return sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr),
            shape=(len(columns), self.n_features),
        )

    def save(self, folder: Path | str) -> None:
        """Write `user_encoder.json` (config and vocabularies)."""
        payload = {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "vocabularies": self._check_fitted(),
        }
        _write_json(Path(folder) / USER_ENCODER_FILE, payload)

    @classmethod
    def load(cls, folder: Path | str) -> Self:
        """Rebuild a saved encoder without refitting."""
        payload = _read_json(Path(folder) / USER_ENCODER_FILE, "UserEncoder")
        encoder = cls(UserEncoderConfig.from_dict(payload["config"]))
        encoder._set_vocabularies({k: list(v) for k, v in payload["vocabularies"].items()})
        return encoder


__all__ = [
    "OfferEncoder",
    "OfferEncoderConfig",
    "UserEncoder",
    "UserEncoderConfig",
    "french_stop_words",
]
