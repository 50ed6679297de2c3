"""The evaluation's redirect segment on a hand-made dataset: who is in it, from which
trigger, what they applied to next, and the plain and path-aware lists' metrics.

Calendar (10 test days, 10 validation days): the last event is on 2024-03-20, so the test
window is [2024-03-11, 2024-03-21). Five offers, all remote (no geography), each of its own
publisher (no cap binds), scored by one fixed order for everyone:
sc2 (5) > sc1 (4) > b2 (3) > p1 (2) > b1 (1); sc = Service Civique, b = bénévolat for
adults, p = sapeurs-pompiers.

People, by hand:
- r1 (22): refused on p1 (2024-01-15) then on sc1 (2024-02-01); applies to b1 in the
  window. In, refused, trigger sc1 (the latest), next {b1}.
- r2 (22): refused on sc1 in the window (03-12), then applies to sc2 (03-14). In, refused,
  trigger sc1, next {sc2}.
- a1 (profile 26): applied to sc1 on 2023-02-01 aged 25; one calendar year on and 26 by the
  profile, Service Civique no longer admits them; applies to p1 in the window. In, too_old,
  trigger sc1, next {p1}.
- a2: as a1 with a disability (Service Civique up to 30): out.
- a3: as a1 without the age on the apply (cannot tell): out.
- n1 (30): applies to b2 (03-15), then is refused on b1 (03-20): nothing after: out.
- n2 (20): refused on sc2 (02-10), applies to sc2 again in the window: the trigger's own
  offer is not a next apply: out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_set
from features.config import FeatureConfig
from recsys import schema
from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.encoding import OfferEncoderConfig
from recsys.evaluation import REDIRECT, REDIRECT_AFTER, EvaluationResult, evaluate
from recsys.featureset import FeatureSet, load_feature_set
from recsys.models.base import Recommender
from recsys.redirects import completed_years, redirects
from training.compare import format_tables

UTC = "UTC"
CONFIG = FeatureConfig(
    test_days=10,
    validation_days=10,
    offer_encoder=OfferEncoderConfig(text_min_df=1, text_max_df=1.0),
)
SCORES = {"sc2": 5.0, "sc1": 4.0, "b2": 3.0, "p1": 2.0, "b1": 1.0}
SC, BENEVOLAT, POMPIERS = (
    "volontariat_service_civique",
    "benevolat",
    "volontariat_sapeurs_pompiers",
)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def _offer(offer_id: str, programme: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.OFFER_SCHEMA.names}
    posted = _ts("2022-12-01")
    row.update(
        id=offer_id,
        publisherId=f"pub-{offer_id}",
        title=f"Mission {offer_id}",
        description="Une mission avec une association.",
        domain="solidarite-insertion",
        activities=["animation"],
        type=programme,
        snu=False,
        remote="full",
        openToMinors=False,
        statusCode="ACCEPTED",
        postedAt=posted,
        createdAt=posted,
        startAt=posted,
        updatedAt=posted,
        tags=[],
    )
    return row


def _profile(user_id: str, age: int, disability: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.PROFILE_SCHEMA.names}
    row.update(
        userId=user_id,
        age=age,
        disability=disability,
        hasQuiz=False,
        quizDomains=[],
        quizActivities=[],
        quizMotivations=[],
    )
    return row


def _apply(when: str, user: str, offer: str, status: str, age: int | None = None) -> dict:
    row: dict[str, Any] = {name: None for name in schema.EVENT_SCHEMA.names}
    row.update(
        id=f"e-{when}-{user}-{offer}",
        type="apply",
        createdAt=_ts(when),
        missionId=offer,
        user=f"h-{user}",
        userId=user,
        clickId=f"c-{when}-{user}-{offer}",
        isBot=False,
        status=status,
        candidateAge=age,
    )
    return row


EVENTS = [
    _apply("2024-01-15", "r1", "p1", "REFUSED"),
    _apply("2024-02-01", "r1", "sc1", "REFUSED"),
    _apply("2024-03-15", "r1", "b1", "PENDING"),
    _apply("2024-03-12", "r2", "sc1", "REFUSED"),
    _apply("2024-03-14", "r2", "sc2", "PENDING"),
    _apply("2023-02-01", "a1", "sc1", "CARRIED_OUT", age=25),
    _apply("2024-03-16", "a1", "p1", "PENDING"),
    _apply("2023-02-01", "a2", "sc1", "CARRIED_OUT", age=25),
    _apply("2024-03-16", "a2", "b2", "PENDING"),
    _apply("2023-02-01", "a3", "sc1", "CARRIED_OUT"),
    _apply("2024-03-16", "a3", "p1", "PENDING"),
    _apply("2024-03-15", "n1", "b2", "PENDING"),
    _apply("2024-03-20", "n1", "b1", "REFUSED"),
    _apply("2024-02-10", "n2", "sc2", "REFUSED"),
    _apply("2024-03-13", "n2", "sc2", "PENDING"),
]


class _Fixed(Recommender):
    """The same score of each offer for everyone (`SCORES`), served as it is."""

    name = "fixed"
    blends_rules = True

    def train(self, data: TrainingData, progress=None) -> None:
        """Nothing to learn."""

    def score(self, users: UserBatch, offers: OfferBatch) -> np.ndarray:
        row = np.array([SCORES[str(offer)] for offer in offers.ids])
        return np.tile(row, (len(users), 1))

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Nothing stored."""


@pytest.fixture(scope="module")
def feature_set(tmp_path_factory: pytest.TempPathFactory) -> FeatureSet:
    folder = tmp_path_factory.mktemp("redirects")
    offers = [
        _offer("sc1", SC),
        _offer("sc2", SC),
        _offer("b1", BENEVOLAT),
        _offer("b2", BENEVOLAT),
        _offer("p1", POMPIERS),
    ]
    profiles = [
        _profile("r1", 22),
        _profile("r2", 22),
        _profile("a1", 26),
        _profile("a2", 26, disability=True),
        _profile("a3", 26),
        _profile("n1", 30),
        _profile("n2", 20),
    ]
    schema.write_table(pd.DataFrame(offers), "offers", folder / "offers.parquet")
    schema.write_table(pd.DataFrame(EVENTS), "events", folder / "events.parquet")
    schema.write_table(pd.DataFrame(profiles), "profiles", folder / "profiles.parquet")
    return load_feature_set(build_feature_set(folder, folder / "features", CONFIG))


@pytest.fixture(scope="module")
def result(feature_set: FeatureSet) -> EvaluationResult:
    return evaluate(feature_set, {"fixed": _Fixed()}, ks=(1, 10), batch_size=3)


def test_the_window_is_the_one_of_the_calendar(feature_set: FeatureSet) -> None:
    assert (feature_set.window_start, feature_set.window_end) == (
        _ts("2024-03-11"),
        _ts("2024-03-21"),
    )


def test_members_triggers_and_next_applies(feature_set: FeatureSet) -> None:
    users = pd.unique(feature_set.targets["user_key"].astype(str))
    found = redirects(
        users,
        feature_set.history(),
        feature_set.targets,
        feature_set.offer_ids,
        feature_set.offer_arrays,
        feature_set.user_batch(users).arrays,
        feature_set.window_start,
    )
    offer_ids = np.asarray(feature_set.offer_ids)
    members = {
        users[person]: (outcome, offer_ids[offer], sorted(offer_ids[items]))
        for person, outcome, offer, items in zip(
            found.members, found.outcome, found.offer, found.relevant, strict=True
        )
    }
    assert members == {
        "r1": ("refused", "sc1", ["b1"]),
        "r2": ("refused", "sc1", ["sc2"]),
        "a1": ("too_old", "sc1", ["p1"]),
    }
    assert found.counts == {
        "people": 3,
        "refused": 2,
        "aged_out": 1,
        "next_applies": 3,
        "next_in_other_programme_share": pytest.approx(2 / 3),
    }


def test_plain_and_path_aware_lists_are_measured_by_hand(result: EvaluationResult) -> None:
    # Plain lists (the fixed order, minus what each person applied to before and the trigger):
    #   r1: sc2, b2, b1 -> b1 third;  r2: sc2, b2, p1, b1 -> sc2 first;
    #   a1 (too old for sc2): b2, p1, b1 -> p1 second.
    # Path-aware (no Service Civique after it): r1: b2, b1; r2: b2, p1, b1 (sc2 gone);
    #   a1: unchanged.
    third, second = 1 / math.log2(4), 1 / math.log2(3)
    plain = result.segments[REDIRECT]["fixed"]
    after = result.segments[REDIRECT_AFTER]["fixed"]
    assert plain["users_evaluated"] == after["users_evaluated"] == 3
    assert plain["ndcg@10"] == pytest.approx((third + 1 + second) / 3, rel=1e-12)
    assert after["ndcg@10"] == pytest.approx((second + 0 + second) / 3, rel=1e-12)
    assert plain["recall@10"] == pytest.approx(1.0)
    assert after["recall@10"] == pytest.approx(2 / 3)
    assert plain["hit_rate@1"] == pytest.approx(1 / 3)  # r2's sc2
    assert after["hit_rate@1"] == 0.0
    assert result.data["redirect"]["people"] == 3
    table = format_tables(result)
    assert "redirect:after" in table and "redirect segment: 3 people" in table


def test_completed_years_count_whole_calendar_years() -> None:
    since = pd.Series(pd.to_datetime(["2023-03-11", "2023-03-12", "2022-12-31"], utc=True))
    assert completed_years(since, _ts("2024-03-11")).tolist() == [1, 0, 1]
