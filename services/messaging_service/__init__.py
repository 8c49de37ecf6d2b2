"""messaging_service: negotiation threads of offers."""
