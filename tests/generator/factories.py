"""factory_boy factories for generator models."""

import factory

from generator.models import GeneratorModel


class GeneratorModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GeneratorModel

    version = factory.Sequence(lambda n: f"g-{n}")
