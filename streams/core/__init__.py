"""The decision core: pure functions of (state, event, now), no Kafka or Faust imports.

Two stages, each keyed the way its state is partitioned:
- orders.decide_order(OrderState, order event or carrier scan, now) -> state, candidate intents, facts
- customers.decide_customer(CustomerState, customer event or command, now) -> state, intents, audit
Times are epoch milliseconds (UTC) throughout.
"""
