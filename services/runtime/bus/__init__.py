"""Event bus port with two adapters: Kafka (aiokafka) and in-process.

Topics split into partitions by key, consumer groups each seeing every message, members of
a group sharing its partitions, at-least-once delivery with offsets committed only after the
handler returned, bounded retries and a dead-letter topic per group. The contract suite
(tests/contract/test_bus_contract.py) runs on both adapters.
"""

from services.runtime.bus.base import (
    REPLAY_GROUP_HEADER,
    Bus,
    BusUnavailable,
    Handler,
    Message,
    OutgoingMessage,
    dead_letter_topic,
)

__all__ = ["REPLAY_GROUP_HEADER", "Bus", "BusUnavailable", "Handler", "Message", "OutgoingMessage",
           "dead_letter_topic"]
