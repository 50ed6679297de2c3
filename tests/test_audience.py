"""Audiences: consent is never violated, nobody ineligible is returned, small audiences are
refused, the audit is written, and the streaming top-k equals a full sort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from recsys import schema, taxonomy
from recsys.arrays import to_epoch_seconds
from recsys.audience import (
    Area,
    AudienceConfig,
    AudienceTooSmall,
    Engagement,
    Need,
    People,
    PropensityScorer,
    Targets,
    _merge,
    build_audience,
    consenting,
    eligible_people,
    engagement,
    need_targets,
    offer_facts,
    programme_fit,
    rank_audiences,
)
from recsys.audience_evaluation import nearest_scorer, random_scorer
from recsys.dataset import OfferBatch
from recsys.eligibility import eligible_matrix
from recsys.encoding import OfferEncoder, OfferEncoderConfig, UserEncoder
from recsys.geo import haversine_km
from recsys.loaders import load_profiles
from recsys.privacy import pseudonym
from recsys.simulation.config import get_preset
from serving.audience import AudienceDesk, AudienceQuery, UnknownTarget
from serving.events import EventStore
from tests.fixtures import LYON, PARIS, make_offers_frame, make_profiles_frame

AT = int(pd.Timestamp("2024-06-01", tz="UTC").timestamp())
N = 60


def _profiles(n: int = N, seed: int = 0) -> pd.DataFrame:
    """People around Paris and Lyon, of every age, half of them consenting."""
    rng = np.random.default_rng(seed)
    lyon = rng.random(n) < 0.4
    lat = np.where(lyon, LYON[0], PARIS[0]) + rng.normal(0, 0.1, n)
    lon = np.where(lyon, LYON[1], PARIS[1]) + rng.normal(0, 0.1, n)
    consent = rng.random(n) < 0.5
    return make_profiles_frame(
        n,
        age=rng.integers(14, 70, n).tolist(),
        lat=lat.tolist(),
        lon=lon.tolist(),
        departmentCode=np.where(lyon, "69", "75").tolist(),
        postalCode=np.where(lyon, "69001", "75001").tolist(),
        radiusKm=rng.choice([5.0, 20.0, 50.0], n).tolist(),
        quizDomains=[["sport"] if rng.random() < 0.5 else ["art-culture"] for _ in range(n)],
        contactConsent=consent.tolist(),
        consentAt=[pd.Timestamp("2024-01-01", tz="UTC") if c else None for c in consent],
    )


def _offers() -> pd.DataFrame:
    return make_offers_frame(
        4,
        id=["paris", "lyon-adults", "remote", "ended"],
        lat=[PARIS[0], LYON[0], PARIS[0], PARIS[0]],
        lon=[PARIS[1], LYON[1], PARIS[1], PARIS[1]],
        remote=["no", "no", "full", "no"],
        openToMinors=[True, False, True, True],
        domain=["sport", "culture-loisirs", "solidarite-insertion", "sport"],
        endAt=[None, None, None, pd.Timestamp("2024-05-01", tz="UTC")],
    )


@pytest.fixture(scope="module")
def encoders() -> tuple[OfferEncoder, UserEncoder]:
    offers = _offers()
    return OfferEncoder(OfferEncoderConfig(text_min_df=1)).fit(offers), UserEncoder().fit(
        _profiles()
    )


def _targets(offer_encoder: OfferEncoder, rows: list[int] | None = None) -> Targets:
    offers = _offers()
    if rows is not None:
        offers = offers.iloc[rows]
    return Targets(OfferBatch.encode(offers, offer_encoder), AT)


def test_only_consenting_people_enter_the_panel(encoders) -> None:
    profiles = _profiles()
    people = People.build(profiles, encoders[1], at=AT)
    assert set(people.users.ids) == set(profiles.loc[profiles["contactConsent"], "userId"])
    # A consent given after the request does not count yet; missing consent reads as no.
    later = profiles.assign(consentAt=pd.Timestamp("2024-07-01", tz="UTC"))
    assert len(People.build(later, encoders[1], at=AT)) == 0
    assert not consenting(profiles.drop(columns=["contactConsent"])).any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 40), chunk=st.integers(1, 50))
def test_audiences_hold_only_consenting_eligible_people(seed: int, k: int, chunk: int) -> None:
    offer_encoder = OfferEncoder(OfferEncoderConfig(text_min_df=1)).fit(_offers())
    profiles = _profiles(seed=seed)
    user_encoder = UserEncoder().fit(profiles)
    people = People.build(profiles, user_encoder, at=AT)
    targets = _targets(offer_encoder)
    scorer = PropensityScorer(None, AudienceConfig())
    ranked = rank_audiences(people, targets, scorer, k, chunk_size=chunk)
    allowed = eligible_matrix(targets.offers.arrays, people.users.arrays, AT)
    consented = set(profiles.loc[profiles["contactConsent"], "userId"])
    for j, one in enumerate(ranked):
        assert set(people.users.ids[one.rows]) <= consented
        assert allowed[one.rows, j].all()
        assert len(one.rows) == min(k, int(allowed[:, j].sum())) == min(k, one.eligible)
        assert np.all(np.diff(one.scores) <= 0)
    assert ranked[3].eligible == 0  # the ended offer has no audience


def test_streaming_top_k_equals_a_full_sort(encoders) -> None:
    people = People.build(_profiles(200, seed=3), encoders[1], at=AT)
    targets = _targets(encoders[0], [2])  # remote: everyone eligible
    scorer = random_scorer(5)
    full = rank_audiences(people, targets, scorer, 25, chunk_size=10_000)[0]
    streamed = rank_audiences(people, targets, scorer, 25, chunk_size=7)[0]
    scores = scorer(people, np.arange(len(people)), targets, np.zeros((len(people), 1)))[:, 0]
    allowed = eligible_people(people.users.arrays, targets)[:, 0]
    expected = np.flatnonzero(allowed)[np.argsort(-scores[allowed], kind="stable")][:25]
    np.testing.assert_array_equal(full.rows, expected)
    np.testing.assert_array_equal(streamed.rows, expected)


def test_merge_keeps_ties_by_row_and_puts_nan_last() -> None:
    rows, scores = _merge(
        np.array([5, 1]), np.array([1.0, np.nan]), np.array([3, 2]), np.array([1.0, 2.0]), 3
    )
    np.testing.assert_array_equal(rows, [2, 3, 5])
    np.testing.assert_allclose(scores, [2.0, 1.0, 1.0])


def test_a_need_keeps_everyone_inside_its_area_only(encoders) -> None:
    profiles = _profiles(120, seed=1)
    people = People.build(profiles, encoders[1], at=AT)
    need = Need(
        domains=["sport"],
        place={"lat": LYON[0], "lon": LYON[1]},
        radius_km=15,
        start=pd.Timestamp("2024-06-02", tz="UTC"),
    )
    targets = need_targets(need, encoders[0], AT)
    ranked = rank_audiences(people, targets, PropensityScorer(None, AudienceConfig()), 100)[0]
    arrays = people.users.arrays.take(ranked.rows)
    distance = haversine_km(arrays.lat, arrays.lon, LYON[0], LYON[1])
    assert len(ranked.rows) > 0 and (distance <= 15).all()
    assert (arrays.age >= taxonomy.ADULT_AGE).all()  # bénévolat not open to minors by default
    inside = haversine_km(people.users.arrays.lat, people.users.arrays.lon, *LYON) <= 15
    adult = people.users.arrays.age >= taxonomy.ADULT_AGE
    assert ranked.eligible == int((inside & adult).sum())
    by_department = Need(
        domains=["sport"], departments=["75"], start=pd.Timestamp("2024-06-02", tz="UTC")
    )
    ranked = rank_audiences(
        people,
        need_targets(by_department, encoders[0], AT),
        PropensityScorer(None, AudienceConfig()),
        100,
    )[0]
    assert set(people.department[ranked.rows]) == {"75"}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"domains": ["sport"], "start": "2024-06-02T00:00:00Z"}, "area"),
        ({"domains": ["nope"], "departments": ["75"], "start": "2024-06-02T00:00:00Z"}, "domains"),
        ({"domains": ["sport"], "departments": ["999"], "start": "2024-06-02T00:00Z"}, "depart"),
        ({"domains": ["sport"], "departments": ["75"], "start": "2024-06-02T00:00:00"}, "zone"),
        (
            {
                "domains": ["sport"],
                "place": {"lat": 45.0},
                "radius_km": 5,
                "start": "2024-06-02T00:00Z",
            },
            "lat",
        ),
    ],
)
def test_bad_needs_are_refused_naming_the_field(values: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Need.model_validate(values)


def test_engagement_is_decayed_and_by_domain() -> None:
    day = 86_400
    events = pd.DataFrame(
        {
            "type": ["apply", "click", "print", "apply", "apply", "print"],
            "createdAt": pd.to_datetime(
                [AT - 30 * day, AT - 1, AT - 60 * day, AT + 5, AT, AT - 40 * day],
                unit="s",
                utc=True,
            ),
            "missionId": ["paris", "unknown", "lyon-adults", "paris", "paris", "paris"],
            "userId": ["a", "a", "b", "a", "b", "a"],
            "isBot": [False, False, False, False, True, False],
            "requestId": ["r1", "r2", "r3", "r4", "r5", "r1"],
        }
    )
    facts = offer_facts(_offers())
    config = AudienceConfig(half_life_days=30, apply_weight=3, click_weight=1, print_weight=0.2)
    got = engagement(events, facts, np.array(["a", "b", "c"]), AT, config)
    # a: an apply 30 days ago (3 · 0.5), a click a second ago (1 · 2^(-1/(30 days))) and a
    # print 40 days ago (0.2 · 2^(-4/3)), the print and the apply of one request (r1).
    click = 2 ** (-1 / (30 * day))
    printed = 0.2 * 2 ** (-4 / 3)
    np.testing.assert_allclose(got.total, [1.5 + click + printed, 0.2 * 0.25, 0.0], rtol=1e-6)
    sport = taxonomy.DOMAINS.index("sport")
    culture = taxonomy.DOMAINS.index("culture-loisirs")
    np.testing.assert_allclose(got.by_domain[0, sport], 1.5 + printed, rtol=1e-6)
    np.testing.assert_allclose(got.by_domain[1, culture], 0.05, rtol=1e-6)
    np.testing.assert_array_equal(got.last_seen, [AT - 1, AT - 60 * day, -1])
    np.testing.assert_array_equal(got.first_seen, [AT - 40 * day, AT - 60 * day, -1])
    np.testing.assert_array_equal(got.visits, [2, 1, 0])  # a: r1 (print, apply) and r2
    benevolat = taxonomy.PROGRAMMES.index(_offers().set_index("id").loc["paris", "type"])
    assert got.applied[0, benevolat] == 1 and got.applied.sum() == 1
    later = engagement(events, facts, np.array(["a", "b", "c"]), AT, config, since=AT - 35 * day)
    np.testing.assert_array_equal(later.visits, [2, 0, 0])  # the print 40 days ago is before
    np.testing.assert_allclose(
        got.decayed(30 * day, 30).total, got.total / 2, rtol=1e-6
    )  # a month later, every event weighs half


def test_programme_fit_is_a_smoothed_log_lift() -> None:
    # Two people of band 0 applied to programme 0 three times, one of band 1 to programme 1.
    applied = np.zeros((3, len(taxonomy.PROGRAMMES)))
    applied[0, 0], applied[1, 0], applied[2, 1] = 2, 1, 1
    fit = programme_fit(np.array([0, 0, 1]), applied)
    bands, programmes = len(schema.CANDIDATE_AGE_BANDS) + 1, len(taxonomy.PROGRAMMES)
    total = bands * programmes + 4  # one per cell, plus the four applies
    # band 0, programme 0: 4 of the band's 3 + 4 counts, against 4 + 6 of all.
    expected = np.log(4 / (3 + programmes)) - np.log((4 + bands - 1) / total)
    assert fit.shape == (bands, programmes)
    np.testing.assert_allclose(fit[0, 0], expected, rtol=1e-12)
    assert fit[1, 1] > 0 > fit[1, 0]


def test_small_audiences_are_refused(encoders) -> None:
    profiles = _profiles()
    lyon_people = (profiles["departmentCode"] == "69").cumsum()
    profiles = profiles.loc[(profiles["departmentCode"] != "69") | (lyon_people <= 12)]
    people = People.build(profiles, encoders[1], at=AT)
    scorer = PropensityScorer(None, AudienceConfig())
    lyon = _targets(encoders[0], [1])
    eligible = rank_audiences(people, lyon, scorer, 1000)[0].eligible
    assert 0 < eligible < 10
    with pytest.raises(AudienceTooSmall, match="fewer than the minimum of 10"):
        build_audience(people, lyon, scorer, 100, "salt")
    remote = build_audience(people, _targets(encoders[0], [2]), scorer, 12, "salt")
    assert len(remote.rows) == 12
    assert sum(remote.totals["department"].values()) == 12
    assert sum(remote.totals["ageBand"].values()) == 12
    assert set(remote.rows["distanceBand"]) == {"remote"}
    known = {pseudonym(i, "salt") for i in people.users.ids}
    assert set(remote.rows["person"]) <= known
    assert not set(remote.rows["person"]) & set(profiles["userId"])  # ids never leave as such


def test_nearest_baseline_ranks_by_distance(encoders) -> None:
    people = People.build(_profiles(), encoders[1], at=AT)
    targets = _targets(encoders[0], [2])
    ranked = rank_audiences(people, targets, nearest_scorer, 10)[0]
    arrays = people.users.arrays.take(ranked.rows)
    distance = haversine_km(arrays.lat, arrays.lon, PARIS[0], PARIS[1])
    assert np.all(np.diff(distance) >= -1e-9)


def test_withdrawal_takes_effect_at_the_next_profile_load(encoders, tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    desk = AudienceDesk(store, "salt")
    bundle = _Bundle(encoders)
    profiles = _profiles()
    query = AudienceQuery(requester="coordinator", channel="cli", offer_id="remote", k=100)
    _, first = desk.draw(query, bundle, "v1", _offers(), profiles, AT)
    someone = profiles.loc[profiles["contactConsent"], "userId"].iloc[0]
    assert pseudonym(someone, "salt") in set(first.rows["person"])
    withdrawn = profiles.copy()
    withdrawn.loc[withdrawn["userId"] == someone, "contactConsent"] = False
    _, second = desk.draw(query, bundle, "v1", _offers(), withdrawn, AT)
    assert pseudonym(someone, "salt") not in set(second.rows["person"])
    assert len(second.rows) == len(first.rows) - 1


def test_engagement_is_read_from_the_live_store(encoders, tmp_path: Path) -> None:
    from serving.events import event_rows
    from serving.schemas import Event

    day = 86_400
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", id_salt="salt")
    desk = AudienceDesk(store, "salt")
    bundle = _Bundle(encoders)
    profiles = _profiles()
    someone = profiles.loc[profiles["contactConsent"], "userId"].iloc[0]
    consented = int(pd.Timestamp("2024-01-01", tz="UTC").timestamp())
    row = list(desk.people(bundle, "v1", profiles, AT).users.ids).index(someone)
    before = desk.people(bundle, "v1", profiles, AT).engagement
    assert (before.last_seen[row], before.visits[row]) == (consented, 0)  # the consent only

    def event(name: str, kind: str, seconds: int) -> Event:
        when = pd.Timestamp(seconds, unit="s", tz="UTC").to_pydatetime()
        return Event(
            id=name,
            type=kind,
            mission_id="paris",
            request_id="r-" + name,
            user_id=someone,
            created_at=when,
        )

    # An apply two days ago (after the model's cutoff), a print before the cutoff (the
    # model's data folder holds those: not read from the store).
    store.add_events(
        event_rows([event("e1", "apply", AT - 2 * day), event("e2", "print", AT - 40 * day)])
    )
    after = desk.people(bundle, "v1", profiles, AT).engagement
    assert after.last_seen[row] == AT - 2 * day
    assert after.visits[row] == 1
    np.testing.assert_allclose(after.total[row], 3 * 2 ** (-2 / 30), rtol=1e-6)
    assert after.applied[row].sum() == 1
    assert after.visits.sum() == 1  # nobody else
    store.close()


def test_every_request_is_audited_served_or_refused(encoders, tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    desk = AudienceDesk(store, "salt")
    bundle = _Bundle(encoders)
    profiles = _profiles()
    served = AudienceQuery(requester="alice", channel="http", offer_id="remote", k=15)
    request_id, drawn = desk.draw(served, bundle, "v1", _offers(), profiles, AT)
    with pytest.raises(AudienceTooSmall):
        desk.draw(
            AudienceQuery(requester="bob", channel="cli", offer_id="ended"),
            bundle,
            "v1",
            _offers(),
            profiles,
            AT,
        )
    with pytest.raises(UnknownTarget):
        desk.draw(
            AudienceQuery(requester="bob", channel="cli", offer_id="nope"),
            bundle,
            "v1",
            _offers(),
            profiles,
            AT,
        )
    log = store.read_audiences().sort_values("createdAt").reset_index(drop=True)
    assert log["requester"].tolist() == ["alice", "bob", "bob"]
    assert log["status"].tolist() == ["served", "refused", "refused"]
    assert log.loc[0, "requestId"] == request_id
    assert log.loc[0, "size"] == len(drawn.rows) == 15
    assert log.loc[0, "eligible"] == drawn.eligible
    assert "fewer than the minimum" in log.loc[1, "reason"]
    assert '"offer_id": "remote"' in log.loc[0, "criteria"]
    store.close()


@pytest.mark.postgres
def test_audit_in_postgres(encoders) -> None:
    from tests.service_fixtures import POSTGRES_URL, postgres_available, postgres_schema

    if not postgres_available():
        pytest.skip("no PostgreSQL server at 127.0.0.1:5432")
    with postgres_schema() as name:
        store = EventStore(POSTGRES_URL, db_schema=name)
        desk = AudienceDesk(store, "salt")
        query = AudienceQuery(requester="carol", channel="http", offer_id="remote", k=10)
        request_id, _ = desk.draw(query, _Bundle(encoders), "v1", _offers(), _profiles(), AT)
        log = store.read_audiences()
        assert log["requestId"].tolist() == [request_id]
        assert log["createdAt"].dt.tz is not None
        store.close()


def test_queries_refuse_a_lower_minimum_or_two_targets() -> None:
    with pytest.raises(ValueError, match="min_count"):
        AudienceQuery(requester="a", channel="cli", offer_id="x", min_count=3)
    with pytest.raises(ValueError, match="exactly one"):
        AudienceQuery(requester="a", channel="cli")
    with pytest.raises(ValueError, match="requester"):
        AudienceQuery(requester=" ", channel="cli", offer_id="x")


def test_profile_loader_keeps_consent(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(
        "userId,age,contactConsent,consentAt\n"
        "u1,20,yes,2024-01-02T10:00:00Z\n"
        "u2,22,no,2024-01-02T10:00:00Z\n"
        "u3,23,,\n"
        "u4,24,maybe,\n"
    )
    result = load_profiles(path)
    table = result.table.set_index("userId")
    assert table["contactConsent"].to_dict() == {"u1": True, "u2": False, "u3": False}
    consent_at = to_epoch_seconds(table["consentAt"], -1)
    assert consent_at.tolist() == [
        int(pd.Timestamp("2024-01-02T10:00:00Z").timestamp()),
        -1,  # a time without consent is dropped
        -1,
    ]
    assert result.rejects["reason"].tolist() == ["invalid_field:contactConsent"]
    snake = tmp_path / "snake.csv"
    snake.write_text("userIdentifiant,contact_consent,consent_at\nu5,oui,2024-01-03\n")
    table = load_profiles(snake).table
    assert table["contactConsent"].tolist() == [True]
    assert to_epoch_seconds(table["consentAt"], -1).tolist() == [
        int(pd.Timestamp("2024-01-03", tz="UTC").timestamp())
    ]


def test_simulated_people_consent_in_the_configured_share() -> None:
    from recsys.geo import cities
    from recsys.simulation.people import simulate_people

    config = get_preset("tiny")
    people = simulate_people(
        config,
        cities().head(config.n_cities),
        np.random.default_rng(1),
        pd.Timestamp("2025-09-01", tz="UTC"),
        3,
    )
    share = people.frame["contactConsent"].mean()
    assert abs(share - config.consent_share) < 0.06  # 600 draws: 3 standard deviations
    consent_at = to_epoch_seconds(people.frame["consentAt"], -1)
    np.testing.assert_array_equal(
        consent_at[people.frame["contactConsent"]], people.arrival[people.frame["contactConsent"]]
    )
    assert (consent_at[~people.frame["contactConsent"]] == -1).all()


def test_area_of_unknown_places_is_outside(encoders) -> None:
    profiles = _profiles(10)
    profiles["lat"] = np.nan
    profiles["lon"] = np.nan
    profiles["postalCode"] = None
    profiles["departmentCode"] = None
    people = People.build(profiles, encoders[1], at=AT)
    area = Area(lat=PARIS[0], lon=PARIS[1], radius_km=50)
    assert not area.mask(people.users.arrays, people.department).any()
    assert not Area(departments=("75",)).mask(people.users.arrays, people.department).any()


class _Bundle:
    """What the desk reads of a ranker bundle: encoders, model (none: no learned term)."""

    def __init__(self, encoders: tuple[OfferEncoder, UserEncoder]) -> None:
        self.offer_encoder, self.user_encoder = encoders
        self.model = None
        self.manifest: dict = {}
        self.catalog = _offers()
        self.cutoff = pd.Timestamp(AT - 30 * 86_400, unit="s", tz="UTC")


def test_engagement_none_is_empty() -> None:
    empty = Engagement.none(3)
    assert empty.total.shape == (3,) and (empty.last_seen == -1).all()


def test_taxonomy_scores_by_formula_equal_the_look_up_tables() -> None:
    from recsys import rules as incumbent
    from recsys.arrays import offer_arrays, profile_arrays

    rng = np.random.default_rng(11)
    profiles = _profiles(300, seed=4)
    quiz = list(taxonomy.QUIZ_DOMAINS)
    profiles["quizDomains"] = [list(rng.choice(quiz, rng.integers(0, 3))) for _ in range(300)]
    people = profile_arrays(profiles)
    offers = offer_arrays(make_offers_frame(40, domain=list(rng.choice(taxonomy.DOMAINS, 40))))
    tags = incumbent.offer_tags(offers)
    assert len(tags) > incumbent.DIRECT_OFFERS  # the tables' path
    tables = incumbent.taxonomy_scores(people, tags)
    for start in range(0, 40, incumbent.DIRECT_OFFERS):  # the formula's path
        part = tags[start : start + incumbent.DIRECT_OFFERS]
        np.testing.assert_allclose(
            incumbent.taxonomy_scores(people, part),
            tables[:, start : start + len(part)],
            rtol=0,
            atol=1e-12,
        )


def test_reasons_name_what_lifted_the_person(encoders) -> None:
    profiles = _profiles()
    sport = taxonomy.DOMAINS.index("sport")

    def engagement_of(ids: np.ndarray) -> Engagement:
        activity = Engagement.none(len(ids))
        activity.by_domain[0, sport] = 3.0
        activity.total[0] = 3.0
        activity.last_seen[0] = AT - 86_400
        return activity

    people = People.build(profiles, encoders[1], engagement_of, AT)
    need = Need(
        domains=["culture-loisirs", "sport"],
        departments=["75", "69"],
        start=pd.Timestamp("2024-06-02", tz="UTC"),
    )
    drawn = build_audience(
        people,
        need_targets(need, encoders[0], AT),
        PropensityScorer(None, AudienceConfig()),
        len(people),
        "salt",
    )
    first = drawn.rows.set_index("person").loc[pseudonym(str(people.users.ids[0]), "salt")]
    assert "engaged before in sport" in first["reasons"]
    assert "active yesterday" in first["reasons"]
    assert drawn.rows["person"].iloc[0] == first.name  # the only engaged person ranks first
