"""offer_service: offers, their versions, contracts, Talent Cloud memberships, time entries."""
