"""factory_boy factories for opt-out rows: domain and contributor claims."""

import factory

from optout.models import ContributorClaim, DomainClaim
from tests.core.factories import UserFactory
from tests.provenance.factories import ContributorFactory


class DomainClaimFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DomainClaim

    artist = factory.SubFactory(UserFactory)
    domain = "art.example.org"
    token = factory.Sequence(lambda n: f"token-{n}")


class ContributorClaimFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContributorClaim

    artist = factory.SubFactory(UserFactory)
    contributor = factory.SubFactory(ContributorFactory)
