import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from optout.models import ContributorClaim, DomainClaim
from provenance.models import Asset, Collection, Contributor


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"artist{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery")


class OperatorFactory(UserFactory):
    username = factory.Sequence(lambda n: f"operator{n}")
    is_staff = True

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def operators_group(self, create, extracted, **kwargs):
        if create:
            self.groups.add(Group.objects.get_or_create(name="operators")[0])


class CollectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Collection
        django_get_or_create = ("name",)

    name = "demo"


class ContributorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contributor

    display_name = factory.Sequence(lambda n: f"Contributor {n}")
    name_key = factory.LazyAttribute(lambda c: c.display_name.lower())


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    collection = factory.SubFactory(CollectionFactory)
    source = factory.Sequence(lambda n: f"works/{n}.png")
    domain = "art.example.org"
    url = factory.LazyAttribute(lambda a: f"https://{a.domain}/{a.source}")
    sha256 = factory.LazyAttribute(lambda a: hashlib.sha256(a.source.encode()).hexdigest())
    # well-spread 64-bit patterns, so unrelated works are far apart in Hamming distance
    phash = factory.Sequence(
        lambda n: int.from_bytes(hashlib.sha256(f"p{n}".encode()).digest()[:8], "big", signed=True)
    )
    title = factory.Sequence(lambda n: f"work {n}")


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
