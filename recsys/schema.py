"""Canonical tables (offers, events, profiles) and the typed records behind them.

Column names follow the national engagement API (camelCase) so that real exports load
without renaming. Every stage exchanges these tables as Parquet files whose Arrow schema is
declared here; `conform` casts a DataFrame to it and fails loudly on a missing column
(`OPTIONAL_COLUMNS` aside: those come as nulls).

Offers (`offers.parquet`), one row per offer, key `id`:
    id, clientId, publisherId, publisherName, organizationName: string
    title, description (plain text, HTML stripped), schedule: string
    domain: string (one of taxonomy.DOMAINS); activities: list<string> (taxonomy.ACTIVITIES)
    type: string (taxonomy.PROGRAMMES); snu: bool; snuPlaces, places: int32 (null = unknown)
    remote: string (no/possible/full/local)
    openToMinors, reducedMobilityAccessible, closeToTransport: bool (null = missing)
    startAt, endAt, postedAt, createdAt, updatedAt, deletedAt: timestamp[ms, UTC] (null allowed
        for endAt and deletedAt)
    compensationAmount, compensationAmountMax: float64; compensationUnit, compensationType: string
    statusCode: string (ACCEPTED/REFUSED)
    city, postalCode, departmentCode, departmentName, region: string; lat, lon: float64 (null =
        no coordinates)
    tags: list<string>
    locationSource: string: null when the offer came with coordinates; else what placed it
        (`recsys.places`: insee, commune, postal_code), null too when nothing did
    addresses: list<struct<city, postalCode, departmentCode: string; lat, lon: float64;
        locationSource: string>>: every address of the offer, the first one included (the
        flattened columns above), placed like the offer when without coordinates; null or
        empty when the export had no `addresses`

Events (`events.parquet`), one row per diffusion signal, key `id`:
    id, type (print/click/apply/account), createdAt (timestamp[ms, UTC])
    missionId (offer id), toPublisherId, fromPublisherId, source, sourceId: string
    user: string (opaque hash, not stable); userId: string (stable id, null when anonymous)
    clickId, requestId, clientEventId: string; isBot: bool
    status: string (apply only); position: int16 (rank on the page, prints and clicks)
    candidateAge: int16; candidatePostalCode: string (apply customAttributes)
    candidateAgeBand: string (one of CANDIDATE_AGE_BANDS; optional, see below)

    Platform exports carry the candidate's exact age (`candidateAge`, kept as exported: raw
    data is immutable) and no band. The service's event store keeps no exact age (personal
    data of mostly young, often minor, visitors): its export has `candidateAge` null and the
    band in `candidateAgeBand`. A separate column rather than a band's representative value
    in `candidateAge`, so that no reader can take a band for an age (a 17-year-old exported
    as 16 would fail the Réserve opérationnelle's 17-72 rule); `candidate_age_band` puts an
    exact age on the same scale when both sources are read together.

Profiles (`profiles.parquet`), one row per known visitor, key `userId`:
    userId: string; age: int16 (null = unknown); lat, lon: float64; postalCode, departmentCode,
    region: string; mobility: string; radiusKm: float64; disability: bool; hasQuiz: bool;
    quizDomains, quizActivities, quizMotivations: list<string>; quizRhythm: string
    (taxonomy.DONT_KNOW stands for "je ne sais pas encore"); contactConsent: bool (the person
    agreed to be contacted for a mobilisation; null reads as no), consentAt:
    timestamp[ms, UTC] (when they agreed, null without consent). A withdrawal is a later
    profile with contactConsent false: audiences read the profiles as last loaded.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recsys import taxonomy
from recsys.geo import PostalCode

TS = pa.timestamp("ms", tz="UTC")
STR_LIST = pa.list_(pa.string())
ADDRESS_LIST = pa.list_(
    pa.struct(
        [
            ("city", pa.string()),
            ("postalCode", pa.string()),
            ("departmentCode", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("locationSource", pa.string()),
        ]
    )
)

OFFER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("clientId", pa.string()),
        ("publisherId", pa.string()),
        ("publisherName", pa.string()),
        ("organizationName", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("schedule", pa.string()),
        ("domain", pa.string()),
        ("activities", STR_LIST),
        ("type", pa.string()),
        ("snu", pa.bool_()),
        ("snuPlaces", pa.int32()),
        ("places", pa.int32()),
        ("remote", pa.string()),
        ("openToMinors", pa.bool_()),
        ("reducedMobilityAccessible", pa.bool_()),
        ("closeToTransport", pa.bool_()),
        ("startAt", TS),
        ("endAt", TS),
        ("postedAt", TS),
        ("createdAt", TS),
        ("updatedAt", TS),
        ("deletedAt", TS),
        ("compensationAmount", pa.float64()),
        ("compensationAmountMax", pa.float64()),
        ("compensationUnit", pa.string()),
        ("compensationType", pa.string()),
        ("statusCode", pa.string()),
        ("city", pa.string()),
        ("postalCode", pa.string()),
        ("departmentCode", pa.string()),
        ("departmentName", pa.string()),
        ("region", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("tags", STR_LIST),
        ("locationSource", pa.string()),
        ("addresses", ADDRESS_LIST),
    ]
)

EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("createdAt", TS),
        ("missionId", pa.string()),
        ("toPublisherId", pa.string()),
        ("fromPublisherId", pa.string()),
        ("source", pa.string()),
        ("sourceId", pa.string()),
        ("user", pa.string()),
        ("userId", pa.string()),
        ("clickId", pa.string()),
        ("requestId", pa.string()),
        ("clientEventId", pa.string()),
        ("isBot", pa.bool_()),
        ("status", pa.string()),
        ("position", pa.int16()),
        ("candidateAge", pa.int16()),
        ("candidatePostalCode", pa.string()),
        ("candidateAgeBand", pa.string()),
    ]
)

# Columns added to a schema after tables were first written with it: `conform` fills them
# with nulls when a frame lacks them (a stored table, or a writer, from before the column).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("candidateAgeBand",),
    "offers": ("locationSource", "addresses"),
    "profiles": ("contactConsent", "consentAt"),
}

# Lower bounds of the candidate age bands after the first: <16, 16-17, 18-20, 21-25, 26-30,
# 31+. The edges of the programmes' age rules that concern the platform's young audience
# (16 Service Civique and minors' bénévolat, 18 adults and `openToMinors`, 25/30 the end of
# Service Civique without/with a disability) are band edges, and the bands are those through
# which the user encoder reads a profile's age (`encoding.UserEncoderConfig.age_band_edges`);
# no feature or model reads `candidateAge`. Not kept: 15 (SNU) and 17 (Réserve
# opérationnelle), whose one-year bands would be exact ages, and the 67/72 upper limits,
# inside 31+.
CANDIDATE_AGE_BAND_EDGES: tuple[int, ...] = (16, 18, 21, 26, 31)
CANDIDATE_AGE_BANDS: tuple[str, ...] = (
    f"<{CANDIDATE_AGE_BAND_EDGES[0]}",
    *(f"{low}-{high - 1}" for low, high in itertools.pairwise(CANDIDATE_AGE_BAND_EDGES)),
    f"{CANDIDATE_AGE_BAND_EDGES[-1]}+",
)
MAX_AGE = 120  # the bound of an age in years: `Profile.age`, candidate and profile ages

PROFILE_SCHEMA = pa.schema(
    [
        ("userId", pa.string()),
        ("age", pa.int16()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("postalCode", pa.string()),
        ("departmentCode", pa.string()),
        ("region", pa.string()),
        ("mobility", pa.string()),
        ("radiusKm", pa.float64()),
        ("disability", pa.bool_()),
        ("hasQuiz", pa.bool_()),
        ("quizDomains", STR_LIST),
        ("quizActivities", STR_LIST),
        ("quizRhythm", pa.string()),
        ("quizMotivations", STR_LIST),
        ("contactConsent", pa.bool_()),
        ("consentAt", TS),
    ]
)

# A profile's list columns (quiz answers) and yes/no flags, as the schema types them.
PROFILE_LIST_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in PROFILE_SCHEMA if pa.types.is_list(field.type)
)
PROFILE_FLAG_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in PROFILE_SCHEMA if pa.types.is_boolean(field.type)
)

SCHEMAS: dict[str, pa.Schema] = {
    "offers": OFFER_SCHEMA,
    "events": EVENT_SCHEMA,
    "profiles": PROFILE_SCHEMA,
}


def conform(frame: pd.DataFrame, kind: Literal["offers", "events", "profiles"]) -> pa.Table:
    """Cast a DataFrame to the canonical Arrow schema of `kind` (column order included).

    Raises:
        ValueError: naming the missing columns, or the column that cannot be cast.
    """
    schema = SCHEMAS[kind]
    missing = missing_columns(frame, kind)
    if missing:
        raise ValueError(f"{kind} table is missing columns: {', '.join(missing)}")
    arrays = []
    for field in schema:
        if field.name not in frame.columns:
            arrays.append(pa.nulls(len(frame), type=field.type))
            continue
        try:
            arrays.append(pa.array(frame[field.name], type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise ValueError(
                f"{kind}.{field.name}: cannot cast to {field.type}: {error}"
            ) from error
    return pa.Table.from_arrays(arrays, schema=schema)


def missing_columns(
    frame: pd.DataFrame, kind: Literal["offers", "events", "profiles"]
) -> list[str]:
    """The columns of `kind`'s schema `frame` lacks, `OPTIONAL_COLUMNS` aside."""
    optional = OPTIONAL_COLUMNS.get(kind, ())
    return [
        name for name in SCHEMAS[kind].names if name not in frame.columns and name not in optional
    ]


def with_optional_columns(
    frame: pd.DataFrame, kind: Literal["offers", "events", "profiles"]
) -> pd.DataFrame:
    """`frame` with the `OPTIONAL_COLUMNS` it lacks added as nulls (a copy when any is)."""
    absent = [name for name in OPTIONAL_COLUMNS.get(kind, ()) if name not in frame.columns]
    if not absent:
        return frame
    return frame.assign(**{name: None for name in absent})


def candidate_age_band(age: int | None) -> str | None:
    """The band (`CANDIDATE_AGE_BANDS`) of an age in completed years; None stays None.

    Raises:
        ValueError: naming candidateAge, for anything but a whole number of years in 0-120
            (the message does not repeat the value: it may be a real age).
    """
    if age is None:
        return None
    if isinstance(age, bool) or not isinstance(age, int | np.integer) or not 0 <= age <= MAX_AGE:
        raise ValueError(f"candidateAge: expected whole years in 0-{MAX_AGE}")
    return CANDIDATE_AGE_BANDS[bisect.bisect_right(CANDIDATE_AGE_BAND_EDGES, int(age))]


def write_table(frame: pd.DataFrame, kind: Literal["offers", "events", "profiles"], path) -> None:
    """Write a canonical table as Parquet after conforming it to its schema."""
    import pyarrow.parquet as pq

    pq.write_table(conform(frame, kind), path)


def read_table(path) -> pd.DataFrame:
    """Read a canonical Parquet table with Arrow-backed timestamps kept as pandas UTC datetimes."""
    return pd.read_parquet(path)


class Quiz(BaseModel):
    """A quiz profile's answers; `taxonomy.DONT_KNOW` stands for "je ne sais pas encore"."""

    model_config = ConfigDict(extra="forbid")

    domains: list[str] = Field(
        default_factory=list,
        max_length=len(taxonomy.QUIZ_DOMAINS) + 1,
        examples=[["environnement-animaux", "sport"]],
    )
    activities: list[str] = Field(
        default_factory=list,
        max_length=len(taxonomy.QUIZ_ACTIVITIES) + 1,
        examples=[["transmettre-animer"]],
    )
    rhythm: str | None = Field(default=None, examples=["un-jour"])
    motivations: list[str] = Field(
        default_factory=list, max_length=len(taxonomy.MOTIVATIONS) + 1, examples=[["etre-utile"]]
    )

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, values: list[str]) -> list[str]:
        return _check_vocabulary(values, taxonomy.QUIZ_DOMAINS, "domains")

    @field_validator("activities")
    @classmethod
    def _known_activities(cls, values: list[str]) -> list[str]:
        return _check_vocabulary(values, taxonomy.QUIZ_ACTIVITIES, "activities")

    @field_validator("motivations")
    @classmethod
    def _known_motivations(cls, values: list[str]) -> list[str]:
        return _check_vocabulary(values, taxonomy.MOTIVATIONS, "motivations")

    @field_validator("rhythm")
    @classmethod
    def _known_rhythm(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_vocabulary([value], taxonomy.RHYTHMS, "rhythm")[0]


class Profile(BaseModel):
    """A visitor as the front describes them: stable id if any, age, place, mobility, quiz.

    The place is the most precise of: `lat`/`lon`, the commune (`insee_code`, else `city`,
    settled by `postal_code` when several communes share the name), the postal code
    (`recsys.places.locate`).
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, max_length=128, examples=["jva-5521"])
    age: int | None = Field(default=None, ge=0, le=MAX_AGE, examples=[19])
    lat: float | None = Field(default=None, ge=-90, le=90, examples=[45.4397])
    lon: float | None = Field(default=None, ge=-180, le=180, examples=[4.3872])
    postal_code: PostalCode | None = Field(default=None, examples=["42000"])
    insee_code: str | None = Field(
        default=None,
        pattern=r"^([0-9]{5}|2[AB][0-9]{3})$",
        description="the commune's INSEE code",
        examples=["42218"],
    )
    city: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the commune's name",
        examples=["Saint-Étienne"],
    )
    radius_km: float | None = Field(default=None, gt=0, le=1000, examples=[15])
    mobility: Literal["walking", "public_transport", "bike", "car"] | None = Field(
        default=None, examples=["public_transport"]
    )
    disability: bool = Field(default=False, examples=[False])
    quiz: Quiz | None = Field(
        default=None,
        examples=[
            {
                "domains": ["environnement-animaux"],
                "activities": ["transmettre-animer"],
                "rhythm": "un-jour",
            }
        ],
    )

    @model_validator(mode="after")
    def _lat_lon_together(self) -> Profile:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


def _check_vocabulary(values: list[str], vocabulary: tuple[str, ...], field: str) -> list[str]:
    allowed = set(vocabulary) | {taxonomy.DONT_KNOW}
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise ValueError(f"{field}: unknown value(s) {unknown}; expected any of {sorted(allowed)}")
    return list(dict.fromkeys(values))
