"""What the three services share: configuration, the Kafka and MongoDB plumbing, the
transactional outbox, dead-lettering and the HTTP shell. No business rules live here."""
