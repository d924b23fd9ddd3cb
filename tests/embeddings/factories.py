"""factory_boy factories for indexing runs."""

import factory

from embeddings.models import IndexRun
from tests.provenance.factories import CollectionFactory


class IndexRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IndexRun

    collection = factory.SubFactory(CollectionFactory)
    space_id = "fake-space"
