"""Who owns a Talent Cloud: the client whose extended offer first names it (the seed's
offer form is where a cloud is set, so no command of its own is needed). From then on an
offer by another client that names the cloud is refused `not_authorized`, the error on
`terms.talent_cloud_id`, so no client can bring freelancers into another company's cloud.

The claim is one insert of the cloud's document (`talent_clouds`, _id = the cloud): the
database's unique _id decides between two first offers on different partitions. It is made
only for an offer that is otherwise accepted, and decides with `insert`'s answer, which is
true (never `insert_write_once`'s). A batch inserts the claim and the new offer together,
before anything else, and keeps neither if another partition claimed the cloud meanwhile
(services.runtime.batch); a repeated command claims again, should a crash have come
between the two inserts.
"""

from __future__ import annotations

from datetime import datetime

from contracts import FieldError, RejectionCode
from services.rules import Rejection
from services.runtime.documents import Documents

from .domain.offer import Offer


class TalentClouds:
    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    async def owner(self, cloud: str) -> str | None:
        document = await self.documents.get(cloud)
        return None if document is None else str(document["owner_id"])

    async def claim(self, cloud: str, client: str, offer_id: str, now: datetime) -> str:
        """The cloud's owner: ``client`` if no one had named it before."""
        document = {"_id": cloud, "owner_id": client, "first_offer_id": offer_id, "at": now}
        if await self.documents.insert(document):
            return client
        return await self.owner(cloud) or client

    async def vet(self, offer: Offer, now: datetime) -> Rejection | None:
        """None if the cloud the offer names is the offer's client's (or no one's yet, and
        now becomes theirs); else the refusal. Safe to repeat: a claim is made once."""
        cloud = offer.terms.talent_cloud_id
        if cloud is None:
            return None
        if await self.claim(cloud, offer.client_id, offer.offer_id, now) == offer.client_id:
            return None
        # The owner is not named: who runs which cloud is theirs to tell.
        problem = "is another client's Talent Cloud; name one of yours, or none"
        return Rejection(
            RejectionCode.NOT_AUTHORIZED,
            f"Talent Cloud {cloud!r} belongs to another client: offer {offer.offer_id!r} "
            "cannot bring its freelancer into it",
            (FieldError(field="terms.talent_cloud_id", message=problem),),
        )
