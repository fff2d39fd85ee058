"""Event bus port with two adapters: Kafka (aiokafka) and in-process.

Both give the same delivery semantics: topics split into partitions by key, consumer
groups each seeing every message once, at-least-once delivery with offsets committed only
after the handler returned, bounded retries and a dead-letter topic. Both pass the same
contract suite (tests/contract/test_bus_contract.py).
"""

from services.runtime.bus.base import Bus, Handler, Message, OutgoingMessage, dead_letter_topic

__all__ = ["Bus", "Handler", "Message", "OutgoingMessage", "dead_letter_topic"]
