"""Every router of the app, in the order they are matched."""

from __future__ import annotations

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from portal import display, health, metrics
    from portal.accounts import api as accounts_api
    from portal.accounts import privacy_routes, sso_consent
    from portal.accounts import routes as accounts_routes
    from portal.accounts import sso as accounts_sso
    from portal.appointments import api as appointments_api
    from portal.appointments import routes as appointments_routes
    from portal.bundles import api as bundles_api
    from portal.bundles import routes as bundles_routes
    from portal.cases import api as cases_api
    from portal.cases import routes as cases_routes
    from portal.catalogue import api as catalogue_api
    from portal.catalogue import routes as catalogue_routes
    from portal.consultations import api as consultations_api
    from portal.consultations import routes as consultations_routes
    from portal.delivery import api as delivery_api
    from portal.delivery import routes as delivery_routes
    from portal.exchange import callbacks
    from portal.library import api as library_api
    from portal.library import routes as library_routes
    from portal.licences import api as licences_api
    from portal.licences import routes as licences_routes
    from portal.notifications import api as notifications_api
    from portal.notifications import routes as notifications_routes
    from portal.originals import api as originals_api
    from portal.originals import routes as originals_routes
    from portal.ratings import api as ratings_api
    from portal.ratings import routes as ratings_routes
    from portal.stats import routes as stats_routes
    from portal.status import api as status_api
    from portal.status import routes as status_routes
    from portal.verification import api as verification_api
    from portal.verification import routes as verification_routes

    return [
        health.router,
        display.router,
        metrics.router,
        catalogue_api.router,
        accounts_api.router,
        privacy_routes.api_router,
        verification_api.router,
        cases_api.router,
        bundles_api.router,
        library_api.router,
        licences_api.router,
        appointments_api.router,
        consultations_api.router,
        delivery_api.router,
        originals_api.router,
        ratings_api.router,
        notifications_api.router,
        status_api.router,
        callbacks.router,
        catalogue_routes.router,
        accounts_routes.router,
        accounts_sso.router,
        sso_consent.router,
        privacy_routes.router,
        cases_routes.router,
        bundles_routes.router,
        library_routes.router,
        licences_routes.router,
        appointments_routes.router,
        consultations_routes.router,
        stats_routes.router,
        delivery_routes.router,
        originals_routes.router,
        ratings_routes.router,
        notifications_routes.router,
        status_routes.router,
        verification_routes.router,
    ]
