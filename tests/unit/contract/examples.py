"""One valid example event of every type, as a client would send it (a JSON object).

These are the golden files' events and the base that bad-input tests break one field at
a time.
"""

from __future__ import annotations

import copy
from typing import Any

from chancery.contract import EVENT_TYPES, Event, parse_incoming

SOURCE = "https://chancery.example/tests/golden"
TIME = "2023-05-27T08:00:00Z"

LI_HUI = {
    "id": "li-hui",
    "name": "Li Hui",
    "country": "CHN",
    "role": "special representative for Eurasian affairs",
}
WANG_WENBIN = {"id": "wang-wenbin", "name": "Wang Wenbin", "country": "CHN", "role": "spokesperson"}
BLINKEN = {
    "id": "antony-blinken",
    "name": "Antony Blinken",
    "country": "USA",
    "role": "Secretary of State",
}
TRIP = {"trip_id": "li-hui-2023-05", "traveller": LI_HUI}

EXAMPLES: dict[str, dict[str, Any]] = {
    "diplomacy.envoy.appointed": {
        "occurred": "2023-05-12",
        "person": LI_HUI,
        "appointed_by": "CHN",
        "role": "special representative for Eurasian affairs",
        "previous_roles": ["ambassador to Moscow"],
        "mandate": "help settle the Ukrainian crisis",
    },
    "diplomacy.visit.announced": {
        "occurred": "2023-05-12",
        **TRIP,
        "legs": [
            {"country": "RUS", "city": "Moscow"},
            {"country": "UKR", "planned": "2023-05-16/2023-05-17"},
            {"country": "POL"},
        ],
        "planned": "2023-W20",
        "purpose": "help settle the Ukrainian crisis",
        "announced_by": WANG_WENBIN,
    },
    "diplomacy.visit.leg.started": {
        "occurred": "2023-05-16",
        **TRIP,
        "country": "UKR",
        "city": "Kyiv",
    },
    "diplomacy.visit.leg.completed": {"occurred": "2023-05-17", **TRIP, "country": "UKR"},
    "diplomacy.visit.postponed": {
        "occurred": "2023-02",
        "trip_id": "antony-blinken-beijing",
        "traveller": BLINKEN,
        "legs": [{"country": "CHN", "city": "Beijing"}],
        "reason": "a suspected spy balloon",
    },
    "diplomacy.visit.rescheduled": {
        "occurred": "2023-05-12",
        **TRIP,
        "legs": [{"country": "UKR"}, {"country": "POL", "planned": "2023-05-18"}],
        "planned": "2023-05-15/2023-05-26",
        "dropped": ["RUS"],
        "reason": "a new schedule",
    },
    "diplomacy.visit.cancelled": {
        "occurred": "2023-05-12",
        **TRIP,
        "destinations": [{"country": "RUS", "city": "Moscow"}],
        "reason": "no longer needed",
    },
    "diplomacy.visit.completed": {
        "occurred": "2023-05-26",
        **TRIP,
        "destinations": [{"country": "UKR"}, {"country": "POL"}],
    },
    "diplomacy.meeting.held": {
        "occurred": "2023-05-10/2023-05-11",
        "parties": ["CHN", "USA"],
        "mode": "in_person",
        "participants": [
            {"id": "wang-yi", "name": "Wang Yi", "country": "CHN", "role": "top diplomat"},
            {"id": "jake-sullivan", "name": "Jake Sullivan", "country": "USA"},
        ],
        "city": "Vienna",
        "country": "AUT",
        "topic": "stabilizing bilateral relations",
        "characterisations": ["candid", "in-depth", "substantive", "constructive"],
    },
    "diplomacy.relations.changed": {
        "occurred": "2023-03",
        "parties": ["IRN", "SAU"],
        "change": "restored",
        "mediator": "CHN",
        "break_years": 7,
    },
    "diplomacy.partnership.declared": {
        "occurred": "2022-02-04",
        "parties": ["CHN", "RUS"],
        "label": "no limits",
    },
    "diplomacy.stance.declared": {
        "occurred": "2023-05-12",
        "party": "CHN",
        "issue": "the Russia-Ukraine conflict",
        "position": "neutral",
        "regarding": ["RUS", "UKR"],
        "aligned_with": [],
        "speaker": WANG_WENBIN,
    },
    "diplomacy.statement.made": {
        "occurred": "2023-05-12",
        "by": "CHN",
        "kind": "blame",
        "targets": ["NATO", "USA"],
        "about": "provoking the conflict",
        "quote": "NATO and the United States provoked the conflict",
    },
    "diplomacy.proposal.made": {
        "occurred": "2023-02-24",
        "proposal_id": "china-peace-plan",
        "by": "CHN",
        "title": "peace plan for Ukraine",
        "issue": "the war in Ukraine",
        "regarding": ["RUS", "UKR"],
    },
    "diplomacy.proposal.rejected": {
        "occurred": "2023-03",
        "proposal_id": "china-peace-plan",
        "proposer": "CHN",
        "by": ["USA"],
        "by_description": "supporters of Ukraine",
        "extent": "largely",
        "reason": "Russia must withdraw first",
    },
    "diplomacy.incident.occurred": {
        "occurred": "2023-02-04",
        "parties": ["CHN", "USA"],
        "summary": "a suspected spy balloon shot down",
        "kind": "airspace",
        "locations": ["USA", "CAN"],
        "cameo": "195",
    },
    "diplomacy.event.coded": {
        "actor1": "CHN",
        "actor2": "RUS",
        "cameo": "042",
        "goldstein": 1.9,
        "occurred": "2023-03-20",
        "source_url": "https://news.example/2023/03/20/xi-moscow",
        "mentions": 12,
    },
    "diplomacy.event.retracted": {
        "target": {"source": SOURCE, "id": "diplomacy.meeting.held"},
        "reason": "reported twice",
    },
}


def example_dict(type_name: str, **data: Any) -> dict[str, Any]:
    """The example of `type_name` as a client's JSON object, `data` fields replaced."""
    payload = copy.deepcopy(EXAMPLES[type_name]) | data
    return {
        "specversion": "1.0",
        "id": f"{type_name}-example" if type_name.endswith("retracted") else type_name,
        "source": SOURCE,
        "type": type_name,
        "time": TIME,
        "datacontenttype": "application/json",
        "data": {k: v for k, v in payload.items() if v is not None},
    }


def example_event(type_name: str, **data: Any) -> Event:
    return parse_incoming(example_dict(type_name, **data))


assert set(EXAMPLES) == set(EVENT_TYPES)
