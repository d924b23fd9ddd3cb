"""Server-rendered pages, mounted at the site root by config/urls.py."""

from django.urls import path

from web.views import accounts, generation, media, operator, optouts, search

app_name = "web"

urlpatterns = [
    path("", search.home, name="home"),
    path("contributors/<int:contributor_id>/", search.contributor, name="contributor"),
    path("thumbs/<int:asset_id>/<int:size>.jpg", media.thumbnail, name="thumbnail"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.ArtistLoginView.as_view(), name="login"),
    path("accounts/logout/", accounts.ArtistLogoutView.as_view(), name="logout"),
    path("optouts/new/", optouts.optout_confirm, name="optout-confirm"),
    path("optouts/", optouts.my_optouts, name="my-optouts"),
    path("optouts/<int:optout_id>/revoke/", optouts.optout_revoke, name="optout-revoke"),
    path("operator/", operator.dashboard, name="dashboard"),
    path("operator/builds.json", operator.builds_progress, name="builds-progress"),
    path("operator/index.json", operator.index_progress, name="index-progress"),
    path("operator/optouts/<int:optout_id>/review/", operator.optout_review, name="optout-review"),
    path("operator/claims/<int:claim_id>/review/", operator.claim_review, name="claim-review"),
    path("generate/", generation.generate, name="generate"),
    path("generated/<int:image_id>/", generation.generated, name="generated"),
    path("generated/<int:image_id>/image.png", media.generated_image, name="generated-image"),
    path("reports/", generation.reports, name="reports"),
    path("reports/chart.png", generation.report_chart, name="report-chart"),
    path("reports/shares.csv", generation.report_csv, name="report-csv"),
]
