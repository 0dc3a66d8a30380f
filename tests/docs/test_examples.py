"""The README's tour, then docs/cli.md's examples: every shell block, as written and in
order, in one bash, against the stack `make run` starts (conftest.py). Each block's answers
are checked for their status and shape, so an example that drifts from the code fails.

The checks go by block, in the order of the page: a block added, removed or moved makes the
count or the first command differ, and the test says where.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chancery.contract.envelope import event_key
from chancery.subscriptions import SUBSCRIPTION_ID_PATTERN, webhook_id

from .conftest import ROOT, DocsStack
from .receiver import Receiver, receiver_source
from .shell import Block, Ran, ShellSession, shell_blocks

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
CLI_DOC = ROOT / "docs" / "cli.md"
POSITION = re.compile(r"^chancery\.events@(\d+:\d+)(,\d+:\d+)*$")
TOUR_SOURCE = "https://chancery.example/tour"
# Bounds on waiting for the delivery worker, far above what it takes on an idle machine.
DELIVERY_TIMEOUT_S = 90


def documents(text: str) -> list[Any]:
    """The JSON documents printed one after another (curl adds no newline between them)."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        value, index = decoder.raw_decode(text, index)
        found.append(value)
    return found


def probe(session: ShellSession, command: str) -> str:
    """The session's state, read without touching it (the tour's variables)."""
    ran = session.run(command)
    assert ran.code == 0, ran.stderr
    return ran.stdout.strip()


def expected_answer(block: Block, page: Path) -> dict[str, Any]:
    """The answer a page shows right below a block (a fenced block without a language)."""
    text = page.read_text(encoding="utf-8").splitlines()
    after = "\n".join(text[block.line + block.text.count("\n") + 1 :])
    match = re.match(r"\s*```\n(.*?)\n```", after, re.DOTALL)
    assert match, f"{block.where(page)}: no answer shown below the block"
    shown: dict[str, Any] = json.loads(match.group(1))
    return shown


Check = Callable[[ShellSession, Block, Ran], None]


def setup_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.stdout == ""
    assert probe(session, "command -v chancery").endswith("/.venv/bin/chancery")
    key = (session.cwd / ".chancery" / "dev-key").read_text().strip()
    assert probe(session, 'printf %s "$AUTH"') == f"Authorization: Bearer {key}"
    assert probe(session, 'printf %s "$INGEST $API"') == probe(
        session, 'printf %s "$CHANCERY_INGEST_URL $CHANCERY_API_URL"'
    )


def push_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [202]
    (answer,) = documents(ran.stdout)
    shown = expected_answer(block, README)
    assert answer["accepted"][0]["id"] == shown["accepted"][0]["id"]
    assert POSITION.match(answer["position"])
    # The partition is the pair's, whatever the log held; on the fresh stack of `make run`
    # with the seeds, the offset is the one shown too.
    assert answer == shown
    assert probe(session, 'printf %s "$POSITION"') == answer["position"]


def relations_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [200, 200, 200]
    usa_chn, irn_sau, chn = documents(ran.stdout)
    assert usa_chn["pair"] == "CHN|USA"
    assert usa_chn["last_contact"]["event"]["id"] == "wang-yi-sullivan-malta-talks"
    assert irn_sau["pair"] == "IRN|SAU"
    assert irn_sau["as_of"] == "2023-02-28"
    assert irn_sau["status"] == "unknown", "restored in March, after that day"
    assert chn["country"] == "CHN"
    scores = [item["score"] for item in chn["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {"CHN|RUS", "CHN|USA"} <= {item["pair"] for item in chn["items"]}


def itinerary_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [200, 200]
    itinerary, visits = documents(ran.stdout)
    assert itinerary["person"]["name"] == "Li Hui"
    (trip,) = itinerary["trips"]
    assert trip["planned"] == "2023-W20"
    assert [leg["country"] for leg in trip["legs"]] == ["RUS", "UKR", "FRA", "DEU", "POL"]
    assert any(item["trip_id"] == trip["trip_id"] for item in visits["items"])


def data_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def stream_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.interrupted, "the stream ends with Ctrl-C"
    # curl prints its status line at the end, which Ctrl-C never reaches: the stream's
    # opening comment is what only a 200 carries.
    assert ran.stdout.startswith(": chancery stream\nid: chancery.events@\n")
    events = data_lines(ran.stdout)
    assert len(events) >= 3
    assert all("CHN" in json.dumps(event["data"]) for event in events), "filtered by country"
    assert "wang-yi-sullivan-malta-talks" in {event["id"] for event in events}


def cli_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.code == 0, ran.stderr
    out = ran.stdout
    assert "China (CHN) ↔ United States (USA)" in out
    assert "last contact  meeting 2023-09-16/2023-09-17" in out
    assert "Li Hui (li-hui)" in out
    tail = [line for line in out.splitlines() if "  @chancery.events@" in line]
    assert len(tail) == 3
    for part in ("ingest", "API", "projector", "deliver", "Kafka", "Redis"):
        assert re.search(rf"^{part}\s+ok\s", out, re.MULTILINE), out
    assert re.search(r"^\s+total\s+0\s*$", out, re.MULTILINE), "no lag once all is applied"


def import_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.code == 0, ran.stderr
    assert summary(ran.stdout)[:7] == summary(cli_summary())[:7]
    assert "events new             468" in ran.stdout


def summary(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def cli_summary() -> str:
    """The import summary docs/cli.md shows."""
    text = CLI_DOC.read_text(encoding="utf-8")
    match = re.search(r"```\n(gdelt: 1 file\(s\)\n.*?)\n```", text, re.DOTALL)
    assert match
    return match.group(1)


def api_get(session: ShellSession, path: str) -> httpx.Response:
    key = (session.cwd / ".chancery" / "dev-key").read_text().strip()
    return httpx.get(
        f"{session.env['CHANCERY_API_URL']}{path}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def subscribe_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [201]
    (created,) = documents(ran.stdout)
    assert re.match(SUBSCRIPTION_ID_PATTERN, created["id"])
    assert created["secret"].startswith("whsec_")
    assert probe(session, 'printf %s "$SUB"') == created["id"]
    assert probe(session, 'printf %s "$SECRET"') == created["secret"]
    hook = probe(session, 'printf %s "$HOOK"')
    assert created["url"] == hook
    assert created["state"] == "active"
    assert created["filters"] == {
        "type": ["diplomacy.meeting.held"],
        "country": ["CHN"],
        "pair": [],
        "person": [],
    }
    # The reader saves the receiver and starts it with the secret, on the port $HOOK names.
    script = session.cwd / "receiver.py"
    script.write_text(receiver_source(README), encoding="utf-8")
    port = int(httpx.URL(hook).port or 0)
    receiver = Receiver(ROOT / ".venv" / "bin" / "python", script, created["secret"], port)
    session.companions["receiver"] = receiver
    receiver.wait_listening(DELIVERY_TIMEOUT_S)


def delivered_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [202]
    (answer,) = documents(ran.stdout)
    (accepted,) = answer["accepted"]
    receiver = session.companions["receiver"]
    assert isinstance(receiver, Receiver)
    # What the README says the receiver prints, for this event: its signature verified.
    expected = f"{webhook_id(event_key(TOUR_SOURCE, accepted['id']))} verified "
    line = receiver.wait_for(lambda line: line.startswith(expected), DELIVERY_TIMEOUT_S)
    assert line == expected + "diplomacy.meeting.held"
    assert not [line for line in receiver.lines if "REFUSED" in line]
    # The worker records the attempt once the receiver has answered: the next block lists it.
    sub = probe(session, 'printf %s "$SUB"')
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not delivered(api_get(session, f"/v1/subscriptions/{sub}/deliveries"), accepted["id"]):
        assert time.monotonic() < deadline, "the delivery is not listed"
        time.sleep(0.2)


def delivered(answer: httpx.Response, event_id: str) -> bool:
    assert answer.status_code == 200, answer.text
    return any(
        attempt["event_id"] == event_id and attempt["outcome"] == "delivered"
        for attempt in answer.json()["deliveries"]
    )


def manage_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [200, 200, 200, 200, 204]
    one, deliveries, paused, resumed = documents(ran.stdout)
    sub = probe(session, 'printf %s "$SUB"')
    assert one["id"] == sub
    assert one["state"] == "active"
    assert POSITION.match(one["position"])
    assert deliveries["subscription"] == sub
    (attempt,) = deliveries["deliveries"]
    assert attempt["event_id"] == "wang-yi-sullivan-malta-talks-again"
    assert attempt["event_source"] == TOUR_SOURCE
    assert attempt["status"] == 204
    assert attempt["outcome"] == "delivered"
    assert attempt["webhook_id"] == webhook_id(event_key(TOUR_SOURCE, attempt["event_id"]))
    assert (paused["state"], resumed["state"]) == ("paused", "active")
    assert paused["reason"]
    assert resumed["reason"] is None
    assert api_get(session, f"/v1/subscriptions/{sub}").status_code == 404, "deleted"
    session.companions.pop("receiver").stop()


def binary_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.statuses == [202]
    (answer,) = documents(ran.stdout)
    (accepted,) = answer["accepted"]
    assert accepted["id"] == "wang-yi-in-vienna"
    assert POSITION.match(answer["position"])
    read = api_get(
        session,
        f"/v1/events/wang-yi-in-vienna?source={TOUR_SOURCE}&min_position={answer['position']}",
    )
    assert read.status_code == 200, read.text
    (match,) = read.json()["matches"]
    assert match["log_position"] == accepted["position"]
    event = match["event"]
    assert (event["type"], event["subject"]) == ("diplomacy.meeting.held", "Wang Yi and Sullivan")
    # The log holds the data as validated, its defaults (mode, ...) filled in.
    assert {k: event["data"][k] for k in ("occurred", "parties", "city")} == {
        "occurred": "2023-05-10/2023-05-11",
        "parties": ["CHN", "USA"],
        "city": "Vienna",
    }


README_CHECKS: list[tuple[str, Check]] = [
    ("source .venv/bin/activate", setup_block),
    ('ANSWER=$(curl -s -X POST "$INGEST/v1/events"', push_block),
    ('curl -s -H "$AUTH" "$API/v1/relations/usa/chn?', relations_block),
    ('curl -s -H "$AUTH" "$API/v1/itineraries/li-hui"', itinerary_block),
    ('curl -N -H "$AUTH" "$API/v1/stream?country=CHN&after=chancery.events@"', stream_block),
    ("chancery relation CHN USA", cli_block),
    ("chancery import gdelt tests/fixtures/reference/", import_block),
    ("HOOK=${HOOK:-http://127.0.0.1:9000/hook}", subscribe_block),
    ('curl -s -X POST "$INGEST/v1/events" -H "$AUTH"', delivered_block),
    ('curl -s -H "$AUTH" "$API/v1/subscriptions/$SUB"', manage_block),
    ('curl -s -X POST "$INGEST/v1/events" -H "$AUTH"', binary_block),
]


def run_page(
    session: ShellSession, page: Path, blocks: list[Block], checks: list[tuple[str, Check]]
) -> None:
    firsts = [block.text.splitlines()[0] for block in blocks]
    assert [first[: len(start)] for first, (start, _) in zip(firsts, checks, strict=False)] == [
        start for start, _ in checks
    ], f"{page.name}'s shell blocks are not those this test checks: {firsts}"
    assert len(blocks) == len(checks)
    for block, (_, check) in zip(blocks, checks, strict=True):
        ran = session.run(block.text, timeout_s=180, interrupt_when=interrupt(session, block))
        failed = [line for line in ran.failed if not (ran.interrupted and line.endswith(" 130"))]
        assert failed == [], f"{block.where(page)}: {failed}\n{ran.stderr}"
        try:
            check(session, block, ran)
        except AssertionError as exc:
            raise AssertionError(f"{block.where(page)}:\n{block.text}\n{ran}") from exc


def interrupt(session: ShellSession, block: Block) -> Callable[[str], bool] | None:
    """When a reader would press Ctrl-C in a block that follows the stream, if it does."""
    if "curl -N" in block.text:
        return lambda out: len(data_lines(out)) >= 3
    if not re.search(r"^chancery tail(?!.*--limit)", block.text, re.MULTILINE):
        return None
    # `tail` without --from follows from now: events must arrive while it runs. Once the
    # commands before it have answered, send one now and then, until it prints one.
    sent: list[float] = []

    def when(out: str) -> bool:
        if "Li Hui (li-hui)" in out and (not sent or time.monotonic() - sent[-1] > 1.5):
            send_meeting(session, len(sent))
            sent.append(time.monotonic())
        return bool(re.search(r"docs-test-meeting|in Geneva, CHE", out))

    return when


def send_meeting(session: ShellSession, number: int) -> None:
    env = session.env
    key = (session.cwd / ".chancery" / "dev-key").read_text().strip()
    event = {
        "specversion": "1.0",
        "id": f"docs-test-meeting-{number}",
        "source": "https://chancery.example/docs-test",
        "type": "diplomacy.meeting.held",
        "time": "2023-10-01T12:00:00Z",
        "data": {
            "occurred": "2023-09-30",
            "parties": ["CHN", "USA"],
            "city": "Geneva",
            "country": "CHE",
        },
    }
    answer = httpx.post(
        f"{env['CHANCERY_INGEST_URL']}/v1/events",
        json=event,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


@pytest.fixture(scope="module")
def terminal(docs_stack: DocsStack) -> Iterator[ShellSession]:
    """The reader's terminal: the tour, then docs/cli.md, in one shell."""
    session = docs_stack.session()
    yield session
    session.close()


def test_the_readme_tour_runs_as_written(terminal: ShellSession) -> None:
    blocks = [
        b for b in shell_blocks(README) if b.section not in ("The two commands", "docker-compose")
    ]
    run_page(terminal, README, blocks, README_CHECKS)


def cli_imports_block(session: ShellSession, block: Block, ran: Ran) -> None:
    imports = ran.stdout.split("gdelt: 1 file(s)")
    assert len(imports) == 2, ran.stdout
    dry, rest = imports
    assert "icews: 1 file(s) (dry run: nothing sent)" in dry
    assert "rows to import       1,932" in dry
    gdelt, icews = rest.split("icews: 1 file(s)")
    # Imported again after the tour: the summary docs/cli.md shows, position and all.
    assert summary("gdelt: 1 file(s)" + gdelt)[:10] == summary(cli_summary())
    assert "rows imported        1,932" in icews
    assert "events accepted      2,207" in icews
    skipped = Path("/tmp/skipped.tsv").read_text(encoding="utf-8").splitlines()
    assert len(skipped) >= 1_773


def cli_operating_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.interrupted, "the last `tail` follows until Ctrl-C"
    out = ran.stdout
    assert re.search(r"^Kafka\s+ok\s", out, re.MULTILINE), out
    assert "as of 2023-02-28" in out
    (known,) = documents(out[out.index("{") : out.rindex("}") + 1])
    assert known["pair"] == "IRN|SAU"
    assert known["status"] == "full", "restored, as Chancery knows it now"
    assert "Li Hui (li-hui)" in out
    assert re.search(r"meeting\.held .* in Geneva, CHE\s+@chancery\.events@", out), out


def cli_resume_block(session: ShellSession, block: Block, ran: Ran) -> None:
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    tail = [line for line in lines if "  @chancery.events@" in line]
    assert len(tail) == 3
    after = probe(session, 'printf %s "$FROM"')
    assert POSITION.match(after)
    assert "would replay 0, skipped 0" in ran.stdout
    assert "replayed 0, skipped 0" in ran.stdout
    assert re.search(r"^chk_[0-9a-f]{12}_\S{43}$", ran.stdout, re.MULTILINE)


CLI_CHECKS: list[tuple[str, Check]] = [
    ("SAMPLES=tests/fixtures/reference", cli_imports_block),
    ("chancery status", cli_operating_block),
    (
        "LAST=$(chancery tail --country CHN --from chancery.events@ --limit 5 --json",
        cli_resume_block,
    ),
]


def test_the_cli_doc_examples_run_as_written(terminal: ShellSession) -> None:
    """In the terminal of the README's tour (the test above), as docs/cli.md says."""
    run_page(terminal, CLI_DOC, shell_blocks(CLI_DOC), CLI_CHECKS)
