"""factory_boy factories for manifest builds."""

import factory
from django.utils import timezone

from training_filter.models import ManifestBuild


class ManifestBuildFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ManifestBuild

    input_kind = ManifestBuild.InputKind.PARQUET
    input_ref = factory.Sequence(lambda n: f"manifests/{n}.parquet")
    as_of = factory.LazyFunction(timezone.now)
