"""The timeline read model on Redis: a pair's or a country's effective events, in pages.

Each partition keeps, per pair, its share of the pair's timeline, and per actor its *solo*
events (those on none of its pairs' timelines), as lexicographic sorted sets of stored
members (`keyspace.stored_timeline_member`: the domain's order, the type, the event's
place). A country's timeline is the merge of its pairs' timelines and its solo events
(chancery.domain.timelines), the pairs found in its `timeline_partners` set.

A page: one round trip for the served version and, for a country, its partners in each
partition; one for a script per partition (MERGE_SCRIPT) that merges that partition's sets
server-side, drops repeats (an event on several of the country's pairs), filters by type and
returns the first `limit + 1` members in the bounds; then the partitions' answers are merged
here and the page's events loaded from where they are stored. The entries carry the public
member (`<order string> <type>`), which is what cursors hold.
"""

from __future__ import annotations

import heapq

from chancery import keyspace
from chancery.domain import order_string
from chancery.domain.relations import Pair
from services.api.ranges import stored_bounds
from services.api.reader import Page, ReadResult, TimelineEntry, TimelineQuery

from .event_reader import EventReader
from .round_trips import Commands, RoundTrips, Script
from .served_version import Layout, ServedVersion

MERGE_SCRIPT = Script(
    """
local lo, hi, desc = ARGV[1], ARGV[2], ARGV[3] == '1'
local limit, types = tonumber(ARGV[4]), ARGV[5]
local chunk = limit + 1
-- Members compare byte by byte, as the sorted sets order them (Lua's < follows the
-- server's locale).
local function before(a, b)
  local n = math.min(#a, #b)
  local i = 1
  while i <= n and string.byte(a, i) == string.byte(b, i) do i = i + 1 end
  if i > n then return #a < #b end
  return string.byte(a, i) < string.byte(b, i)
end
local buffers, at, from, done = {}, {}, {}, {}
local function fill(k)
  local got
  if desc then
    got = redis.call('ZRANGE', KEYS[k], from[k], lo, 'BYLEX', 'REV', 'LIMIT', 0, chunk)
  else
    got = redis.call('ZRANGE', KEYS[k], from[k], hi, 'BYLEX', 'LIMIT', 0, chunk)
  end
  buffers[k], at[k] = got, 1
  if #got < chunk then done[k] = true else from[k] = '(' .. got[#got] end
end
for k = 1, #KEYS do
  from[k], done[k] = desc and hi or lo, false
  fill(k)
end
local out, last = {}, nil
while #out <= limit do
  local best, from_key = nil, nil
  for k = 1, #KEYS do
    if at[k] > #buffers[k] and not done[k] then fill(k) end
    local m = buffers[k][at[k]]
    if m ~= nil then
      if best == nil or (desc and before(best, m)) or (not desc and before(m, best)) then
        best, from_key = m, k
      end
    end
  end
  if best == nil then break end
  at[from_key] = at[from_key] + 1
  if best ~= last then
    last = best
    local code = string.match(best, ' (.)[^ ]*$')
    if types == '' or string.find(types, code, 1, true) then out[#out + 1] = best end
  end
end
return out
"""
)
"""KEYS: one partition's sorted sets; ARGV: the BYLEX bounds (low, high), '1' for descending,
the page's limit, the type codes accepted ('' for any). The first limit + 1 distinct accepted
members of the sets' union, in order."""


class TimelineReader:
    def __init__(self, round_trips: RoundTrips, served: ServedVersion, events: EventReader) -> None:
        self._round_trips = round_trips
        self._served = served
        self._events = events

    async def timeline(self, query: TimelineQuery) -> ReadResult[Page[TimelineEntry]]:
        if query.kind == "pair":
            snapshot, layout = await self._served.snapshot_and_layout()
            keys = [[space.pair_timeline(query.key)] for space in layout.spaces]
        else:
            country = query.key

            def partners(layout: Layout) -> Commands:
                return tuple(("SMEMBERS", s.timeline_partners(country)) for s in layout.spaces)

            replies, snapshot, layout = await self._served.read(partners)
            keys = [
                [space.solo_timeline(country)]
                + [space.pair_timeline(_pair(country, p.decode())) for p in sorted(reply)]
                for space, reply in zip(layout.spaces, replies, strict=True)
            ]
        lo, hi = stored_bounds(query.start, query.end, query.after, query.descending)
        types = (
            ""
            if query.types is None
            else "".join(sorted(c for t, c in keyspace.TYPE_CODES.items() if t in query.types))
        )
        if query.types is not None and not types:
            return ReadResult(Page([], more=False), snapshot)
        args = (lo, hi, "1" if query.descending else "", query.limit, types)
        replies = await self._round_trips.send(tuple(MERGE_SCRIPT.call(k, *args) for k in keys))
        merged = heapq.merge(
            *([(m, p) for m in reply] for p, reply in enumerate(replies)),
            reverse=query.descending,
        )
        found: list[tuple[int, int]] = []
        more = False
        for member, p in merged:
            if len(found) == query.limit:
                more = True
                break
            found.append((p, keyspace.timeline_place(member)))
        stored = await self._events.load(layout, found)
        items = [
            TimelineEntry(
                keyspace.timeline_member(order_string(stored[at].event), stored[at].event.type),
                stored[at],
            )
            for at in found
            if at in stored
        ]
        return ReadResult(Page(items, more), snapshot)


def _pair(country: str, partner: str) -> str:
    return Pair.of(country, partner).key
