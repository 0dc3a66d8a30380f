"""The `chancery` commands, one module per family; services/cli/main.py assembles them.

- serve.py: run a service (`ingest`, `projector`, `api`) or the whole local stack (`up`);
- keys.py: `keys create`;
- data.py: events in through ingest (`load seeds`, `import gdelt|icews`);
- read.py: the read models (`relation`, `itinerary`) and the live stream (`tail`);
- ops.py: operations (`rebuild`, `status`, `dlq replay`).

Each module imports what a command needs inside the command, so `chancery --help` and a
command's own start stay fast.
"""
