"""The replay against a running service: `recsys replay --url`.

`ServicePolicy` is a `ReplayPolicy` whose lists come from the ranking service over HTTP, as
the platform's front would get them, and which sends back what the visitors did, as the front
would report it. Everything else is the replay's (`recsys.simulation.replay`): the same
visitors, the same draws of the simulator's true model, the same figures.

For each served session of a week, one `POST /rank`:

* `user_id`: the stable `userId` when the session carries it (the service supplies the stored
  profile, RECSYS_PROFILES being the dataset's profiles); otherwise the visitor's `user`
  hash, prefixed as the feature stage keys anonymous visitors (`features.interactions.
  ANON_PREFIX`), so that a model trained on the dataset knows them as the replay in process
  does, with a `profile` holding the place of the request and its radius;
* `filters`: the widget's programme and domain, and no fully remote offer where the surface
  mixes none in;
* `k` and `offset`: the page the visitor looked at (`k` = page size, `offset` = (page − 1) · k);
* `at`: the session's simulated instant, so that the list is made, logged and assigned to an
  experiment's arm at it (the service must run with RECSYS_CLOCK=request);
* `context`: the surface (`source`) and the widget.

After the week's draws, `POST /events` in batches: a `print` per offer shown (its request id,
position and the session's instant), a `click` (its own `click_id`), an `apply` (the click's
`click_id`, the request id, the settled status), each at its simulated instant, so that the
service's attribution (`recsys.attribution`) and `recsys ab report` work in simulated time.

The service's catalog must be the offers as replayed (`training.replay.write_serving`); the
offers the simulation withdrew meanwhile (filled up) are still in it: an offer of a list that
the replay's week no longer holds is left out of the page shown (`unlisted` counts them).
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pandas as pd

from features.interactions import ANON_PREFIX
from recsys import taxonomy
from recsys.ranking import PAD
from recsys.simulation import diffusion
from recsys.simulation.applications import NO_APPLY
from recsys.simulation.replay import Outcome, Replay, Requests

NAME = "service"
CLIENTS = 8  # /rank requests in flight at once (the service batches them)
EVENTS_PER_POST = 1000  # the service's most events per request (serving.schemas.MAX_EVENTS)
TIMEOUT_SECONDS = 120.0
_NOT_FULLY_REMOTE = [value for value in taxonomy.REMOTE_VALUES if value != "full"]


class ServiceError(ValueError):
    """The service refused a request or could not be reached; the message says which."""


class ServicePolicy:
    """The lists of a running ranking service (see the module docstring).

    Args:
        url: the service's base URL (`http://host:port`).
        replay: the replay it serves (its world gives the sessions' surfaces and pages).
        clients: /rank requests in flight at once.
    """

    name = NAME
    learns = False

    def __init__(self, url: str, replay: Replay, clients: int = CLIENTS) -> None:
        self.url = url.rstrip("/")
        self._world = replay.world
        self._row = {offer_id: row for row, offer_id in enumerate(replay.world.offers.frame["id"])}
        self._clients = clients
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_SECONDS)
        self._week: tuple[list[str], list[str], list[str]] | None = None
        self.arms: Counter[str | None] = Counter()  # lists per experiment arm (None: unassigned)
        self.unlisted = 0  # offers listed by the service that the replay's week no longer holds

    def close(self) -> None:
        self._http.close()

    def refit(self, now: int, events: pd.DataFrame) -> None:
        raise NotImplementedError("the service's model is the service's: it is not refitted")

    def lists(self, requests: Requests) -> np.ndarray:
        bodies = self.requests(requests)
        with ThreadPoolExecutor(self._clients) as pool:
            answers = list(pool.map(lambda body: self._post("/rank", body), bodies))
        out = np.full((len(requests), int(requests.k.max())), PAD, dtype=np.int64)
        request_ids, user_ids, sources = [], [], []
        for i, (body, answer) in enumerate(zip(bodies, answers, strict=True)):
            request_ids.append(answer["request_id"])
            user_ids.append(body["user_id"])
            sources.append(body["context"]["source"])
            self.arms[answer.get("arm")] += 1
            for item in answer["items"]:
                row = self._row.get(item["offer_id"], -1)
                column = int(np.searchsorted(requests.columns, row))
                if row < 0 or column >= len(requests.columns) or requests.columns[column] != row:
                    self.unlisted += 1
                    continue
                out[i, item["rank"] - 1] = column
        self._week = (request_ids, user_ids, sources)
        return out

    def requests(self, requests: Requests) -> list[dict[str, Any]]:
        """The week's `/rank` bodies, one per served session (see the module docstring)."""
        sessions = self._world.sessions
        rows = requests.session
        ids = requests.profiles["userId"].astype(str).tolist()
        bodies = []
        for i, row in enumerate(rows.tolist()):
            size, page = int(sessions.size[row]), int(sessions.page[row])
            source = diffusion.SOURCES[int(sessions.source[row])]
            body: dict[str, Any] = {
                "user_id": ids[i] if requests.identified[i] else ANON_PREFIX + ids[i],
                "k": size,
                "offset": (page - 1) * size,
                "at": _iso(int(requests.time[i])),
                "context": {"source": source},
                "fields": [],
            }
            if not requests.identified[i]:
                profile = requests.profiles.iloc[i]
                body["profile"] = {
                    "lat": float(profile["lat"]),
                    "lon": float(profile["lon"]),
                    "radius_km": float(profile["radiusKm"]),
                }
            if source == "widget" and sessions.source_id[row] >= 0:
                body["context"]["widget_id"] = str(
                    self._world.vocabularies.source_ids[int(sessions.source_id[row])]
                )
            filters: dict[str, list[str]] = {}
            if sessions.programme[row] >= 0:
                filters["types"] = [taxonomy.PROGRAMMES[int(sessions.programme[row])]]
            if sessions.domain[row] >= 0:
                filters["domains"] = [taxonomy.DOMAINS[int(sessions.domain[row])]]
            if not sessions.remote[row]:
                filters["remote"] = _NOT_FULLY_REMOTE
            if filters:
                body["filters"] = filters
            bodies.append(body)
        return bodies

    def observe(self, requests: Requests, outcome: Outcome) -> None:
        """Send the week's prints, clicks and applies to the service's `/events`."""
        if self._week is None:
            raise RuntimeError("observe: no lists were made this week")
        events = self.events(outcome)
        for start in range(0, len(events), EVENTS_PER_POST):
            self._post("/events", {"events": events[start : start + EVENTS_PER_POST]})
        self._week = None

    def events(self, outcome: Outcome) -> list[dict[str, Any]]:
        """The week's events as the front reports them (see the module docstring)."""
        if self._week is None:
            raise RuntimeError("events: no lists were made this week")
        request_ids, user_ids, sources = self._week
        offer_ids = self._world.offers.frame["id"].to_numpy(dtype=object)
        events: list[dict[str, Any]] = []
        for r, offer, position, shown, clicked, applied, status in zip(
            outcome.request.tolist(),
            outcome.offer.tolist(),
            outcome.position.tolist(),
            outcome.time.tolist(),
            outcome.click_time.tolist(),
            outcome.apply_time.tolist(),
            outcome.status.tolist(),
            strict=True,
        ):
            request_id = request_ids[r]
            common = {
                "mission_id": str(offer_ids[offer]),
                "request_id": request_id,
                "position": position,
                "user_id": user_ids[r],
                "source": sources[r],
            }
            events.append(
                {"id": f"{request_id}-print-{position}", "type": "print", "created_at": _iso(shown)}
                | common
            )
            if clicked < 0:
                continue
            click_id = f"{request_id}-click-{position}"
            events.append(
                {"id": click_id, "type": "click", "created_at": _iso(clicked), "click_id": click_id}
                | common
            )
            if status == NO_APPLY:
                continue
            events.append(
                {
                    "id": f"{request_id}-apply-{position}",
                    "type": "apply",
                    "created_at": _iso(applied),
                    "click_id": click_id,
                    "status": taxonomy.APPLY_STATUSES[status],
                }
                | common
            )
        return events

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body`; the answer's JSON.

        Raises:
            ServiceError: the service cannot be reached, or refused the request (its message,
                which names the refused field, e.g. `at` when RECSYS_CLOCK is not `request`).
        """
        try:
            answer = self._http.post(path, json=body)
        except httpx.HTTPError as error:
            raise ServiceError(f"--url: cannot reach {self.url}{path}: {error}") from None
        if answer.status_code >= 400:
            try:
                message = answer.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = answer.text[:300]
            raise ServiceError(f"--url: {self.url}{path} answered {answer.status_code}: {message}")
        return answer.json()


def _iso(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()
