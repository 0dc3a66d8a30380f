"""The API's Redis adapter: reads what the projector wrote, per partition, and merges it.

`RedisReadModelReader` (facade.py) is the `ReadModelReader` port on Redis, composed of one
reader per read model:

    served_version.py    which version is served, snapshots, waiting for a position
    relation_reader.py   pair ledgers (the hot path), partners, a pair's events
                         (relation_scripts.py: its Lua scripts and replies;
                         share_cache.py: the decoded shares it holds)
    timeline_reader.py   timelines in pages (merged_pages.py: the k-way merge of the
                         partitions' sorted sets, also used for visits)
    people_reader.py     trips, trip histories, visits, people
    event_reader.py      events by id; stored events for the other readers
    stream_reader.py     the stream of applied events

All of them reach Redis through one seam, `RoundTrips` (round_trips.py): commands in one
round trip, scripts over one partition's keys, blocking stream reads. On one server
(round_trips.py) it holds its connections (held_connections.py); on a Redis Cluster
(cluster_round_trips.py) it splits each round trip by master and sends the shares at once.

Nothing here decides what a relation or a trip is: values are decoded with
chancery.keyspace and folded by chancery.domain, as the projector folds them.
"""

from .cluster_round_trips import ClusterRoundTrips
from .facade import SCRIPTS, RedisReadModelReader

__all__ = ["SCRIPTS", "ClusterRoundTrips", "RedisReadModelReader"]
