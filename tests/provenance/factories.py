"""factory_boy factories for provenance rows: collections, contributors, assets."""

import hashlib

import factory

from provenance.models import Asset, Collection, Contributor


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
