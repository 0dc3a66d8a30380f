"""Response examples of the relations-through-time routes (routes/history.py), as
examples.py has them for the others: what the API answers over the article's events on its
day. tests/unit/api/test_history.py checks that each is still exactly what it answers."""

from __future__ import annotations

from typing import Any

EXAMPLE_URLS: dict[str, str] = {
    "SCORE_SERIES_EXAMPLE": "/v1/relations/CHN/USA/scores?bucket=month&from=2023-01-01",
    "RECORD_EXAMPLE": "/v1/relations/IRN/SAU/record",
    "COUNTRY_RELATIONS_EXAMPLE": "/v1/countries/IRN/relations?as_of=2023-03-31",
}

SCORE_SERIES_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "pair": "CHN|USA",
    "parties": ["CHN", "USA"],
    "bucket": "month",
    "start": "2023-01-01",
    "end": "2023-05-12",
    "as_of": None,
    "known_at": None,
    "points": [
        {
            "period": "2023-01",
            "start": "2023-01-01",
            "end": "2023-01-31",
            "score": None,
            "climate": None,
            "events": 0,
            "events_to_date": 0,
        },
        {
            "period": "2023-02",
            "start": "2023-02-01",
            "end": "2023-02-28",
            "score": -5.5,
            "climate": "hostile",
            "events": 2,
            "events_to_date": 2,
        },
        {
            "period": "2023-03",
            "start": "2023-03-01",
            "end": "2023-03-31",
            "score": -5.5,
            "climate": "hostile",
            "events": 0,
            "events_to_date": 2,
        },
        {
            "period": "2023-04",
            "start": "2023-04-01",
            "end": "2023-04-30",
            "score": -5.5,
            "climate": "hostile",
            "events": 0,
            "events_to_date": 2,
        },
        {
            "period": "2023-05",
            "start": "2023-05-01",
            "end": "2023-05-12",
            "score": -2.1,
            "climate": "strained",
            "events": 2,
            "events_to_date": 4,
        },
    ],
}

RECORD_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "pair": "IRN|SAU",
    "parties": ["IRN", "SAU"],
    "as_of": None,
    "known_at": None,
    "order": "desc",
    "total": 2,
    "retracted": 0,
    "items": [
        {
            "occurred": "2023-03",
            "recorded_at": "2023-05-12T09:09:00Z",
            "retracted": False,
            "retraction": None,
            "event": {
                "specversion": "1.0",
                "id": "iran-saudi-talks-mediated-by-china",
                "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                "type": "diplomacy.meeting.held",
                "time": "2023-05-12T00:00:00Z",
                "datacontenttype": "application/json",
                "recordedtime": "2023-05-12T09:09:00Z",
                "partitionkey": "IRN|SAU",
                "data": {
                    "occurred": "2023-03",
                    "parties": ["IRN", "SAU"],
                    "mode": "in_person",
                    "participants": [],
                    "mediator": "CHN",
                    "topic": "restoration of diplomatic relations",
                    "characterisations": [],
                },
            },
        },
        {
            "occurred": "2023-03",
            "recorded_at": "2023-05-12T09:10:00Z",
            "retracted": False,
            "retraction": None,
            "event": {
                "specversion": "1.0",
                "id": "iran-saudi-relations-restored",
                "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                "type": "diplomacy.relations.changed",
                "time": "2023-05-12T00:00:00Z",
                "datacontenttype": "application/json",
                "recordedtime": "2023-05-12T09:10:00Z",
                "partitionkey": "IRN|SAU",
                "data": {
                    "occurred": "2023-03",
                    "parties": ["IRN", "SAU"],
                    "change": "restored",
                    "mediator": "CHN",
                    "break_years": 7,
                },
            },
        },
    ],
    "next_cursor": None,
}

COUNTRY_RELATIONS_EXAMPLE: dict[str, Any] = {
    "position": "chancery.events@0:6,1:0,2:1,3:1,4:1,5:4",
    "country": "IRN",
    "as_of": "2023-03-31",
    "known_at": None,
    "sort": "score",
    "order": "desc",
    "items": [
        {
            "pair": "IRN|SAU",
            "parties": ["IRN", "SAU"],
            "as_of": "2023-03-31",
            "known_at": None,
            "status": "full",
            "status_since": "2023-03",
            "status_events": [
                {
                    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                    "id": "iran-saudi-relations-restored",
                }
            ],
            "mediator": "CHN",
            "partnership": None,
            "score": 2.25,
            "climate": "cordial",
            "event_count": 2,
            "quad_counts": {"1": 2, "2": 0, "3": 0, "4": 0},
            "last_contact": {
                "when": "2023-03",
                "kind": "meeting",
                "event": {
                    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                    "id": "iran-saudi-talks-mediated-by-china",
                },
            },
            "next_contact": None,
        },
        {
            "pair": "CHN|IRN",
            "parties": ["CHN", "IRN"],
            "as_of": "2023-03-31",
            "known_at": None,
            "status": "unknown",
            "status_since": None,
            "status_events": [],
            "mediator": None,
            "partnership": None,
            "score": 1.0,
            "climate": "neutral",
            "event_count": 1,
            "quad_counts": {"1": 1, "2": 0, "3": 0, "4": 0},
            "last_contact": {
                "when": "2023-03",
                "kind": "meeting",
                "event": {
                    "source": "https://chancery.example/seeds/article-li-hui-2023-05-12",
                    "id": "iran-saudi-talks-mediated-by-china",
                },
            },
            "next_contact": None,
        },
    ],
}
