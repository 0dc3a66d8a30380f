"""Relation state of a pair: given these events, then this state."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from chancery.contract import When
from chancery.domain import (
    HALF_LIFE_DAYS,
    DayBucket,
    Pair,
    RelationLedger,
    build_ledger,
    climate_of,
    fold_relation,
    merge,
    pairs_of,
    relation_effects,
    score_of,
    view,
)

from .builders import (
    BLINKEN,
    coded,
    event,
    incident,
    legs,
    meeting,
    partnership,
    recorded,
    relations_changed,
    retraction,
    statement,
    trip_event,
)

pytestmark = pytest.mark.unit

IRN_SAU = Pair.of("SAU", "IRN")
CHN_USA = Pair.of("USA", "CHN")
CHN_RUS = Pair.of("CHN", "RUS")
TODAY = date(2023, 5, 12)


def test_a_pair_is_unordered_and_keyed_sorted() -> None:
    assert Pair.of("USA", "chn") == Pair.parse("CHN|USA") == Pair.parse("USA|CHN")
    assert str(CHN_USA) == CHN_USA.key == "CHN|USA"
    assert CHN_USA.other("CHN") == "USA"
    with pytest.raises(ValidationError):
        Pair.of("CHN", "CHN")
    with pytest.raises(ValidationError):
        Pair.parse("CHN|XXX")
    with pytest.raises(ValueError, match="pair key"):
        Pair.parse("CHN")


def test_with_no_events_the_state_is_unknown_and_neutral() -> None:
    state = fold_relation(IRN_SAU, [], today=TODAY)
    assert (state.status, state.status_since, state.status_event_ids) == ("unknown", None, ())
    assert (state.score, state.climate, state.event_count) == (0.0, "neutral", 0)
    assert state.quad_counts == {"1": 0, "2": 0, "3": 0, "4": 0}
    assert (state.last_contact, state.next_contact, state.partnership, state.mediator) == (
        None,
        None,
        None,
        None,
    )


def test_status_is_the_latest_change_and_since_when_it_has_held() -> None:
    restored = relations_changed("r1", "2023-03", "IRN", "SAU", "restored", mediator="CHN")
    upgraded = relations_changed("r2", "2023-04-20", "SAU", "IRN", "upgraded")
    state = fold_relation(IRN_SAU, [upgraded, restored], today=TODAY)
    assert state.status == "full"
    assert state.status_since == When("2023-03")  # full since the restoration
    assert state.status_event_ids == (restored.ref, upgraded.ref)
    assert state.mediator == "CHN"


def test_a_finer_report_of_the_same_change_makes_it_precise() -> None:
    in_march = relations_changed("r1", "2023-03", "IRN", "SAU", "restored", mediator="CHN")
    on_the_10th = relations_changed("r2", "2023-03-10", "SAU", "IRN", "restored")
    state = fold_relation(IRN_SAU, [on_the_10th, in_march], today=TODAY)
    assert (state.status, state.status_since) == ("full", When("2023-03-10"))
    assert state.status_event_ids == (on_the_10th.ref,)
    assert (
        fold_relation(IRN_SAU, [in_march, on_the_10th], today=TODAY, as_of=date(2023, 3, 9)).status
        == "unknown"
    )


def test_another_change_inside_a_coarser_one_does_not_make_it_precise() -> None:
    in_march = relations_changed("r1", "2023-03", "IRN", "SAU", "restored")
    upgraded = relations_changed("r2", "2023-03-20", "SAU", "IRN", "upgraded")
    state = fold_relation(IRN_SAU, [upgraded, in_march], today=TODAY)
    assert (state.status, state.status_since) == ("full", When("2023-03"))
    assert state.status_event_ids == (in_march.ref, upgraded.ref)


def test_a_new_status_starts_a_new_run() -> None:
    events = [
        relations_changed("r1", "2016-01-03", "IRN", "SAU", "severed"),
        relations_changed("r2", "2023-03", "IRN", "SAU", "restored", mediator="CHN"),
        relations_changed("r3", "2023-05-01", "IRN", "SAU", "downgraded"),
    ]
    state = fold_relation(IRN_SAU, events, today=TODAY)
    assert (state.status, state.status_since, state.mediator) == (
        "downgraded",
        When("2023-05-01"),
        None,
    )
    assert state.status_event_ids == (events[2].ref,)


def test_as_of_a_day_the_status_is_what_had_occurred_by_then() -> None:
    severed = relations_changed("r1", "2016-01-03", "IRN", "SAU", "severed")
    restored = relations_changed("r2", "2023-03", "IRN", "SAU", "restored", mediator="CHN")
    assert (
        fold_relation(IRN_SAU, [severed, restored], today=TODAY, as_of=date(2023, 2, 28)).status
        == "severed"
    )
    # a month counts from its first day
    as_of_march = fold_relation(IRN_SAU, [severed, restored], today=TODAY, as_of=date(2023, 3, 1))
    assert (as_of_march.status, as_of_march.as_of) == ("full", date(2023, 3, 1))


def test_a_late_status_change_lands_in_the_past_not_on_top() -> None:
    restored = relations_changed("r2", "2023-03", "IRN", "SAU", "restored")
    late = relations_changed("late", "2022-11", "IRN", "SAU", "suspended")  # arrives last
    state = fold_relation(IRN_SAU, [restored, late], today=TODAY)
    assert (state.status, state.status_since) == ("full", When("2023-03"))
    assert (
        fold_relation(IRN_SAU, [restored, late], today=TODAY, as_of=date(2022, 12, 1)).status
        == "suspended"
    )


def test_a_retracted_status_change_is_as_if_it_never_was() -> None:
    restored = relations_changed("r2", "2023-03", "IRN", "SAU", "restored")
    wrong = relations_changed("wrong", "2023-04", "IRN", "SAU", "severed")
    state = fold_relation(IRN_SAU, [restored, wrong, retraction("x", wrong)], today=TODAY)
    assert state == fold_relation(IRN_SAU, [restored], today=TODAY)
    assert state.status == "full"


def test_a_partnership_has_its_latest_label_and_since_when() -> None:
    first = partnership("p1", "2022-02-04", "no limits", "CHN", "RUS")
    again = partnership("p2", "2023-03-21", "no limits", "RUS", "CHN")
    state = fold_relation(CHN_RUS, [again, first], today=TODAY)
    assert state.partnership is not None
    assert (state.partnership.label, state.partnership.since) == ("no limits", When("2022-02-04"))
    assert state.partnership.event_ids == (first.ref, again.ref)
    renamed = partnership("p3", "2023-04", "comprehensive strategic", "CHN", "RUS")
    state = fold_relation(CHN_RUS, [first, again, renamed], today=TODAY)
    assert state.partnership is not None
    assert (state.partnership.label, state.partnership.event_ids) == (
        "comprehensive strategic",
        (renamed.ref,),
    )


def test_a_partnership_among_three_binds_every_pair() -> None:
    bloc = partnership("p", "2023-01", "trilateral", "CHN", "RUS", "IRN")
    assert pairs_of(bloc) == {Pair.of("CHN", "RUS"), Pair.of("CHN", "IRN"), Pair.of("IRN", "RUS")}


def test_the_score_of_one_event_is_its_goldstein_value() -> None:
    state = fold_relation(CHN_USA, [incident("i", "2023-02-04", "CHN", "USA")], today=TODAY)
    assert (state.score, state.climate) == (-7.0, "hostile")
    assert state.quad_counts == {"1": 0, "2": 0, "3": 0, "4": 1}


def test_the_score_is_a_mean_decayed_with_a_90_day_half_life() -> None:
    assert HALF_LIFE_DAYS == 90
    old = coded("a", "2023-01-01", "CHN", "USA", "161")  # -4.0, 90 days before the next
    new = coded("b", "2023-04-01", "CHN", "USA", "020")  # +3.0
    # (-4 * 0.5 + 3 * 1) / (0.5 + 1) = 0.67
    assert fold_relation(CHN_USA, [old, new], today=TODAY).score == 0.67
    # the same two events, a year later, give the same mean: quiet pairs keep their climate
    assert fold_relation(CHN_USA, [old, new], today=date(2024, 5, 12)).score == 0.67
    # many events of the same tone do not make the score louder than one
    many = [coded(f"c{i}", "2023-04-01", "CHN", "USA", "020") for i in range(5)]
    assert fold_relation(CHN_USA, many, today=TODAY).score == 3.0


def test_score_of_adds_buckets_in_integer_tenths() -> None:
    buckets = {date(2023, 5, 1): DayBucket(count=3, quads=(3, 0, 0, 0), goldstein_tenths=57)}
    assert score_of(buckets) == 1.9
    assert score_of({}) == 0.0


@pytest.mark.parametrize(
    ("score", "climate"),
    [
        (-10.0, "hostile"),
        (-5.01, "hostile"),
        (-5.0, "strained"),
        (-1.01, "strained"),
        (-1.0, "neutral"),
        (1.0, "neutral"),
        (1.01, "cordial"),
        (5.0, "cordial"),
        (5.01, "close"),
        (10.0, "close"),
    ],
)
def test_climate_is_a_label_of_the_score(score: float, climate: str) -> None:
    assert climate_of(score) == climate


def test_the_last_contact_is_the_latest_meeting_or_visit_not_any_event() -> None:
    vienna = meeting("vienna", "2023-05-10/2023-05-11", "CHN", "USA", city="Vienna")
    call = meeting("call", "2023-04", "CHN", "USA", mode="phone")
    blame = statement("blame", "2023-05-12", "CHN", "blame", "USA")
    state = fold_relation(CHN_USA, [blame, vienna, call], today=TODAY)
    assert state.last_contact is not None
    assert (state.last_contact.when, state.last_contact.kind, state.last_contact.event) == (
        When("2023-05-10/2023-05-11"),
        "meeting",
        vienna.ref,
    )
    as_of_april = fold_relation(
        CHN_USA, [blame, vienna, call], today=TODAY, as_of=date(2023, 4, 30)
    )
    assert as_of_april.last_contact is not None
    assert as_of_april.last_contact.kind == "phone"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("040", "meeting"),
        ("041", "phone"),
        ("042", "visit"),
        ("043", "visit"),
        ("046", "meeting"),
        ("036", None),
        ("112", None),
    ],
)
def test_a_coded_event_is_a_contact_when_its_code_is_a_consultation(
    code: str, kind: str | None
) -> None:
    state = fold_relation(CHN_USA, [coded("c", "2023-05-01", "USA", "CHN", code)], today=TODAY)
    assert (state.last_contact.kind if state.last_contact else None) == kind


def test_a_meeting_derived_from_coded_events_adds_its_contact_but_does_not_count_again() -> None:
    # An importer's 040 row: the coded event, and the meeting read off its code.
    consult = coded("gdelt-1", "2023-05-01", "USA", "CHN", "040", goldstein=1.0)
    talks = meeting("meeting.1", "2023-05-01", "CHN", "USA", cameo="040", derived=True)
    alone = fold_relation(CHN_USA, [consult], today=TODAY)
    both = fold_relation(CHN_USA, [consult, talks], today=TODAY)
    assert (both.event_count, both.quad_counts, both.score) == (
        alone.event_count,
        alone.quad_counts,
        alone.score,
    )
    assert both.event_count == 1
    (effect,) = relation_effects(talks).values()
    assert effect.bucket.is_empty
    assert effect.contact is not None  # still a contact
    assert both.last_contact is not None
    assert both.last_contact.event in {consult.ref, talks.ref}
    # Not derived, the same meeting is an interaction of its own.
    unlinked = meeting("meeting.2", "2023-05-01", "CHN", "USA", cameo="040")
    assert fold_relation(CHN_USA, [consult, unlinked], today=TODAY).event_count == 2


def test_a_visit_leg_derived_from_coded_events_still_plans_and_contacts() -> None:
    visit = coded("icews-1", "2023-05-16", "CHN", "UKR", "042")
    started = trip_event("leg.started", "s", "2023-05-16", country="UKR", derived=True)
    state = fold_relation(Pair.of("CHN", "UKR"), [visit, started], today=date(2023, 5, 17))
    assert state.event_count == 1
    (effect,) = relation_effects(started).values()
    assert effect.bucket.is_empty
    assert effect.plan is not None
    assert effect.contact is not None


def test_a_meeting_dated_after_today_is_the_next_contact() -> None:
    summit = meeting("summit", "2023-06-01", "CHN", "USA")
    vienna = meeting("vienna", "2023-05-10/2023-05-11", "CHN", "USA")
    state = fold_relation(CHN_USA, [summit, vienna], today=TODAY)
    assert state.last_contact is not None
    assert state.last_contact.event == vienna.ref
    assert state.next_contact is not None
    assert state.next_contact.event == summit.ref


def test_an_announced_trip_is_the_next_contact_until_it_is_postponed() -> None:
    announced = trip_event(
        "announced", "a", "2023-05-12", legs=legs("RUS", "UKR"), planned="2023-W20"
    )
    state = fold_relation(CHN_RUS, [announced], today=TODAY)
    assert state.next_contact is not None
    assert (state.next_contact.when, state.next_contact.kind) == (When("2023-W20"), "visit")
    # still next during that week, until the leg starts
    assert fold_relation(CHN_RUS, [announced], today=date(2023, 5, 17)).next_contact is not None
    postponed = trip_event("postponed", "p", "2023-05-14", legs=legs("RUS", "UKR"))
    assert fold_relation(CHN_RUS, [announced, postponed], today=TODAY).next_contact is None
    # as of the day before the postponement, it was still planned
    as_of = fold_relation(CHN_RUS, [announced, postponed], today=TODAY, as_of=date(2023, 5, 13))
    assert as_of.next_contact is not None
    assert as_of.next_contact.event == announced.ref


def test_a_rescheduled_trip_is_next_at_its_new_dates_and_a_dropped_leg_not_at_all() -> None:
    announced = trip_event(
        "announced", "a", "2023-05-12", legs=legs("RUS", "UKR"), planned="2023-W20"
    )
    rescheduled = trip_event(
        "rescheduled",
        "r",
        "2023-05-14",
        legs=[{"country": "UKR", "planned": "2023-06-02"}],
        planned="2023-06",
        dropped=["RUS"],
    )
    events = [rescheduled, announced]
    assert fold_relation(CHN_RUS, events, today=TODAY).next_contact is None
    ukraine = fold_relation(Pair.of("CHN", "UKR"), events, today=TODAY).next_contact
    assert ukraine is not None
    assert ukraine.when == When("2023-06-02")


def test_a_started_leg_is_a_contact_and_no_longer_a_plan() -> None:
    announced = trip_event(
        "announced", "a", "2023-05-12", legs=legs("RUS", "UKR"), planned="2023-W20"
    )
    started = trip_event("leg.started", "s", "2023-05-16", country="UKR", city="Kyiv")
    state = fold_relation(Pair.of("CHN", "UKR"), [started, announced], today=date(2023, 5, 17))
    assert state.last_contact is not None
    assert (
        state.last_contact.kind,
        state.last_contact.event,
    ) == (
        "visit",
        started.ref,
    )
    assert state.next_contact is None
    russia = fold_relation(CHN_RUS, [started, announced], today=date(2023, 5, 17))
    assert russia.next_contact is not None  # the Russian leg is still to come


def test_known_at_a_time_only_what_was_recorded_by_then_counts() -> None:
    restored = recorded(
        relations_changed("r", "2023-03", "IRN", "SAU", "restored"), "2023-03-11T08:00:00+00:00"
    )
    wrong = recorded(
        relations_changed("w", "2023-04", "IRN", "SAU", "severed"), "2023-04-02T08:00:00+00:00"
    )
    fix = recorded(retraction("x", wrong), "2023-04-05T08:00:00+00:00")
    events = [restored, wrong, fix]
    at = date.fromisoformat
    k1 = fold_relation(IRN_SAU, events, today=at("2023-05-12"), known_at=restored.recordedtime)
    assert k1.status == "full"
    assert k1.event_count == 1
    k2 = fold_relation(IRN_SAU, events, today=at("2023-05-12"), known_at=wrong.recordedtime)
    assert k2.status == "severed"  # what we believed then
    k3 = fold_relation(IRN_SAU, events, today=at("2023-05-12"), known_at=fix.recordedtime)
    assert k3.status == "full"
    unstamped = relations_changed("u", "2023-04", "IRN", "SAU", "severed")
    assert (
        fold_relation(IRN_SAU, [restored, unstamped], today=TODAY, known_at=fix.recordedtime).status
        == "full"
    )


def test_pairs_of_each_kind_of_event() -> None:
    mediated = meeting("m", "2023-03", "IRN", "SAU", mediator="CHN")
    assert pairs_of(mediated) == {IRN_SAU, Pair.of("CHN", "IRN"), Pair.of("CHN", "SAU")}
    blame = statement("s", "2023-05-12", "CHN", "blame", "NATO", "USA")
    assert pairs_of(blame) == {Pair.of("CHN", "NATO"), CHN_USA}
    assert pairs_of(statement("c", "2023-05-12", "CHN", "comment")) == frozenset()
    assert pairs_of(coded("d", "2023-05-12", "USA", "USA", "010")) == frozenset()  # domestic
    postponed = trip_event(
        "postponed",
        "p",
        "2023-02",
        trip="blinken",
        traveller=BLINKEN,
        legs=[{"country": "CHN", "city": "Beijing"}],
    )
    assert pairs_of(postponed) == {CHN_USA}
    stoltenberg = {
        "id": "jens-stoltenberg",
        "name": "Jens Stoltenberg",
        "country": "NOR",
        "organisation": "NATO",
    }
    visit = trip_event(
        "leg.started", "v", "2023-05-01", trip="kyiv", traveller=stoltenberg, country="UKR"
    )
    assert pairs_of(visit) == {Pair.of("NATO", "UKR")}
    appointed = event(
        "envoy.appointed",
        "e",
        {
            "occurred": "2023-05-12",
            "person": {"id": "li-hui", "name": "Li Hui", "country": "CHN"},
            "appointed_by": "CHN",
            "role": "envoy",
        },
    )
    assert pairs_of(appointed) == frozenset()
    assert pairs_of(retraction("r", blame)) == frozenset()


def test_effects_carry_exact_integer_buckets_and_keyed_entries() -> None:
    visit = coded("v", "2023-05-16", "CHN", "UKR", "042")
    (effect,) = relation_effects(visit).values()
    assert effect.pair == Pair.of("CHN", "UKR")
    assert effect.event_key == visit.key
    assert effect.day == date(2023, 5, 16)
    assert effect.bucket == DayBucket(count=1, quads=(1, 0, 0, 0), goldstein_tenths=19)
    assert effect.contact is not None
    assert effect.contact.kind == "visit"
    assert (effect.status, effect.partnership, effect.plan) == (None, None, None)


def test_a_ledger_entry_removed_leaves_no_trace() -> None:
    a = meeting("a", "2023-05-10", "CHN", "USA")
    b = incident("b", "2023-05-10", "CHN", "USA")
    ledger = build_ledger([a, b])
    for effect in relation_effects(b).values():
        ledger.remove(effect)
    assert ledger == build_ledger([a])
    for effect in relation_effects(a).values():
        ledger.remove(effect)
    assert ledger == RelationLedger()
    assert ledger.pairs == frozenset()


def test_partitions_merge_into_the_ledger_of_all_their_events() -> None:
    events = [
        meeting("a", "2023-05-10", "CHN", "USA"),
        incident("b", "2023-05-10", "CHN", "USA"),
        relations_changed("c", "2023-03", "IRN", "SAU", "restored"),
    ]
    left, right = build_ledger(events[:1]), build_ledger(events[1:])
    assert merge(left, right) == merge(right, left) == build_ledger(events)
    assert merge(left, RelationLedger()) == left
    state = view(CHN_USA, merge(left, right), today=TODAY)
    assert state == fold_relation(CHN_USA, events, today=TODAY)
    assert state.event_count == 2
