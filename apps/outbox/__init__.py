"""The transactional outbox: every outgoing message is a row first, sent by one mechanism.

A message (a transition email, a sign-off request or reminder, a check warning, an incident page
or webhook post, a report) is written in the same transaction as the change that causes it, so a
rolled-back change sends nothing and a committed one cannot lose its message to a broker that is
down or a worker that dies. After commit the row is handed to Celery (best effort); the sweep,
every minute, sends what nobody picked up and retries what failed. Sending claims the row with a
conditional UPDATE and a lease, so two workers, a retry and the sweep never send it twice, and a
killed worker's claim is taken over once the lease (OUTBOX_LEASE_SECONDS) is over.

Tables: `outbox.Message` for emails built from templates (this app), and any model of another
app that has the delivery fields (status, attempts, last_error, created_at, next_attempt_at,
claimed_at, sent_at) and registers itself with `engine.register` (incident deliveries, report
deliveries). This app imports no feature app: they register with it.
"""
