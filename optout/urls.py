from django.urls import path

from optout import account_apis, apis

urlpatterns = [
    path("auth/signup/", account_apis.ArtistSignupApi.as_view(), name="artist-signup"),
    path("auth/login/", account_apis.ArtistLoginApi.as_view(), name="artist-login"),
    path("auth/tokens/", account_apis.TokenListCreateApi.as_view(), name="token-list"),
    path("auth/tokens/rotate/", account_apis.TokenRotateApi.as_view(), name="token-rotate"),
    path("auth/tokens/<str:token_key>/", account_apis.TokenRevokeApi.as_view(), name="token-revoke"),
    path("optouts/", apis.OptOutListCreateApi.as_view(), name="optout-list"),
    path("optouts/<int:optout_id>/", apis.OptOutDetailApi.as_view(), name="optout-detail"),
    path("optouts/<int:optout_id>/history/", apis.OptOutHistoryApi.as_view(), name="optout-history"),
    path("optouts/<int:optout_id>/revoke/", apis.OptOutRevokeApi.as_view(), name="optout-revoke"),
    path("optouts/<int:optout_id>/approve/", apis.OptOutApproveApi.as_view(), name="optout-approve"),
    path("optouts/<int:optout_id>/reject/", apis.OptOutRejectApi.as_view(), name="optout-reject"),
    path("claims/domains/", apis.DomainClaimListCreateApi.as_view(), name="domain-claim-list"),
    path("claims/domains/<int:claim_id>/", apis.DomainClaimDetailApi.as_view(), name="domain-claim-detail"),
    path(
        "claims/domains/<int:claim_id>/verify/",
        apis.DomainClaimVerifyApi.as_view(),
        name="domain-claim-verify",
    ),
    path("claims/contributors/", apis.ContributorClaimListCreateApi.as_view(), name="contributor-claim-list"),
    path(
        "claims/contributors/<int:claim_id>/",
        apis.ContributorClaimDetailApi.as_view(),
        name="contributor-claim-detail",
    ),
    path(
        "claims/contributors/<int:claim_id>/review/",
        apis.ContributorClaimReviewApi.as_view(),
        name="contributor-claim-review",
    ),
    path("check/", apis.CheckApi.as_view(), name="optout-check"),
]
