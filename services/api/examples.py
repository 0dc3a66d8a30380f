"""Response examples for the OpenAPI docs: what the API answers over the article's events
(seeds/article.jsonl) on the article's day, 12 May 2023. tests/unit/api/test_examples.py
checks that each is still exactly what the API answers."""

from __future__ import annotations

from typing import Any


def ok(example: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"example": example}}}


EXAMPLE_URLS: dict[str, str] = {
    "RELATION_EXAMPLE": "/v1/relations/CHN/USA",
    "RELATION_LIST_EXAMPLE": "/v1/relations?country=CHN&sort=event_count&limit=2",
    "TIMELINE_EXAMPLE": "/v1/relations/CHN/USA/timeline?type=meeting.held",
    "ITINERARY_EXAMPLE": "/v1/itineraries/li-hui",
    "VISITS_EXAMPLE": "/v1/visits?country=UKR",
    "PERSON_EXAMPLE": "/v1/people/li-hui",
    "EVENT_EXAMPLE": "/v1/events/wang-yi-sullivan-vienna-talks",
}

RELATION_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "pair": "CHN|USA",
    "parties": ["CHN", "USA"],
    "as_of": "2023-05-12",
    "known_at": None,
    "status": "unknown",
    "status_since": None,
    "status_events": [],
    "mediator": None,
    "partnership": None,
    "score": -2.1,
    "climate": "strained",
    "event_count": 4,
    "quad_counts": {"1": 1, "2": 0, "3": 1, "4": 2},
    "last_contact": {
        "when": "2023-05-10/2023-05-11",
        "kind": "meeting",
        "event": {
            "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
            "id": "wang-yi-sullivan-vienna-talks",
        },
    },
    "next_contact": None,
}

RELATION_LIST_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "country": "CHN",
    "sort": "event_count",
    "order": "desc",
    "items": [
        {
            "pair": "CHN|RUS",
            "parties": ["CHN", "RUS"],
            "as_of": "2023-05-12",
            "known_at": None,
            "status": "unknown",
            "status_since": None,
            "status_events": [],
            "mediator": None,
            "partnership": {
                "label": "no limits",
                "since": "2023-05-12",
                "event_ids": [
                    {
                        "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                        "id": "china-russia-no-limits",
                    }
                ],
            },
            "score": 3.48,
            "climate": "cordial",
            "event_count": 5,
            "quad_counts": {"1": 4, "2": 1, "3": 0, "4": 0},
            "last_contact": None,
            "next_contact": {
                "when": "2023-W20",
                "kind": "visit",
                "event": {
                    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                    "id": "li-hui-trip-announced",
                },
            },
        },
        {
            "pair": "CHN|USA",
            "parties": ["CHN", "USA"],
            "as_of": "2023-05-12",
            "known_at": None,
            "status": "unknown",
            "status_since": None,
            "status_events": [],
            "mediator": None,
            "partnership": None,
            "score": -2.1,
            "climate": "strained",
            "event_count": 4,
            "quad_counts": {"1": 1, "2": 0, "3": 1, "4": 2},
            "last_contact": {
                "when": "2023-05-10/2023-05-11",
                "kind": "meeting",
                "event": {
                    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                    "id": "wang-yi-sullivan-vienna-talks",
                },
            },
            "next_contact": None,
        },
    ],
    "next_cursor": (
        "eyJhZnRlciI6IlVTQSIsImRlc2MiOnRydWUsImsiOiJyZWxhdGlvbnMiLCJzb3J0IjoiZXZlbnRfY291bnQi"
        "LCJ2YWx1ZSI6NC4wfQ"
    ),
}

# The seeds' Vienna talks, as the timelines and the events by id show them.
VIENNA_TALKS_ITEM: dict[str, Any] = {
    "log_position": "chancery.events@3:0",
    "retracted": False,
    "event": {
        "specversion": "1.0",
        "id": "wang-yi-sullivan-vienna-talks",
        "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
        "type": "diplomacy.meeting.held",
        "time": "2023-05-12T00:00:00Z",
        "datacontenttype": "application/json",
        "recordedtime": "2023-05-12T09:16:00Z",
        "partitionkey": "CHN|USA",
        "data": {
            "occurred": "2023-05-10/2023-05-11",
            "parties": ["CHN", "USA"],
            "mode": "in_person",
            "participants": [
                {
                    "id": "wang-yi",
                    "name": "Wang Yi",
                    "country": "CHN",
                    "role": "top diplomat of the ruling Communist Party",
                },
                {
                    "id": "jake-sullivan",
                    "name": "Jake Sullivan",
                    "country": "USA",
                    "role": "national security adviser",
                },
            ],
            "city": "Vienna",
            "country": "AUT",
            "topic": "improving and stabilizing bilateral relations",
            "characterisations": ["candid", "in-depth", "substantive", "constructive"],
        },
    },
}

TIMELINE_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "timeline": "pair:CHN|USA",
    "items": [
        VIENNA_TALKS_ITEM,
    ],
    "next_cursor": None,
}

ITINERARY_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "person_id": "li-hui",
    "person": {
        "id": "li-hui",
        "name": "Li Hui",
        "country": "CHN",
        "role": "special representative for Eurasian affairs",
        "organisation": None,
    },
    "as_of": None,
    "known_at": None,
    "trips": [
        {
            "trip_id": "li-hui-ukraine-settlement-2023",
            "traveller": {
                "id": "li-hui",
                "name": "Li Hui",
                "country": "CHN",
                "role": "special representative for Eurasian affairs",
                "organisation": None,
            },
            "status": "announced",
            "planned": "2023-W20",
            "purpose": "to help finalize a political settlement of the Ukrainian crisis",
            "legs": [
                {
                    "country": "RUS",
                    "city": None,
                    "status": "planned",
                    "planned": "2023-W20",
                    "started": None,
                    "completed": None,
                },
                {
                    "country": "UKR",
                    "city": None,
                    "status": "planned",
                    "planned": "2023-W20",
                    "started": None,
                    "completed": None,
                },
                {
                    "country": "FRA",
                    "city": None,
                    "status": "planned",
                    "planned": "2023-W20",
                    "started": None,
                    "completed": None,
                },
                {
                    "country": "DEU",
                    "city": None,
                    "status": "planned",
                    "planned": "2023-W20",
                    "started": None,
                    "completed": None,
                },
                {
                    "country": "POL",
                    "city": None,
                    "status": "planned",
                    "planned": "2023-W20",
                    "started": None,
                    "completed": None,
                },
            ],
            "history": [
                {
                    "when": "2023-05-12",
                    "type": "diplomacy.visit.announced",
                    "event": {
                        "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                        "id": "li-hui-trip-announced",
                    },
                    "status": "announced",
                    "detail": "to help finalize a political settlement of the Ukrainian crisis",
                }
            ],
        }
    ],
}

VISITS_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "country": "UKR",
    "items": [
        {
            "when": "2023-W20",
            "country": "UKR",
            "city": None,
            "direction": "to",
            "leg_status": "planned",
            "trip_id": "li-hui-ukraine-settlement-2023",
            "trip_status": "announced",
            "traveller": {
                "id": "li-hui",
                "name": "Li Hui",
                "country": "CHN",
                "role": "special representative for Eurasian affairs",
                "organisation": None,
            },
            "purpose": "to help finalize a political settlement of the Ukrainian crisis",
        }
    ],
    "next_cursor": None,
}

PERSON_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "id": "li-hui",
    "person": {
        "id": "li-hui",
        "name": "Li Hui",
        "country": "CHN",
        "role": "special representative for Eurasian affairs",
        "organisation": None,
    },
    "appointments": [
        {
            "role": "special representative for Eurasian affairs",
            "appointed_by": "CHN",
            "occurred": "2023-05-12",
            "previous_roles": ["ambassador to Moscow"],
            "mandate": "special envoy to help finalize a political settlement of the "
            "Ukrainian crisis",
            "event": {
                "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                "id": "li-hui-named-envoy",
            },
        }
    ],
    "trips": [
        {
            "trip_id": "li-hui-ukraine-settlement-2023",
            "status": "announced",
            "planned": "2023-W20",
            "destinations": ["RUS", "UKR", "FRA", "DEU", "POL"],
            "purpose": "to help finalize a political settlement of the Ukrainian crisis",
        }
    ],
}

EVENT_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "id": "wang-yi-sullivan-vienna-talks",
    "matches": [
        VIENNA_TALKS_ITEM,
    ],
}
